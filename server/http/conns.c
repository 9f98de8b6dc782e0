/* conns.c - a registry of open connections under one mutex, and the
 * reaper thread that enforces the request deadline. */
#define _GNU_SOURCE
#include "http/conns.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <lab/alloc.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/err.h"

enum {
  SRV__WAITING,   /* the clock runs: a request should be arriving */
  SRV__ANSWERING, /* a response is produced or sent: no clock */
  SRV__CUT        /* the reaper shut it down */
};

struct srv_conn {
  srv_conn_t *prev, *next;    /* the registry (under srv__lock) */
  int fd;
  _Atomic int phase;
  _Atomic uint64_t answered;  /* responses completed on it; written only
                                 by the connection's own MHD thread */
  /* The reaper's own view, under srv__lock. */
  uint64_t seen;              /* `answered` when rx_base was taken */
  uint64_t rx_base;           /* bytes received by then */
  uint64_t first_ns;          /* when bytes past rx_base were first seen */
};

static lab_site_t srv__conn_site = {__FILE__, "srv_conns_open",
                                    "http.connection", __LINE__, 0};
static lab_site_t srv__conn_free_site = {__FILE__, "srv_conns_close",
                                         "http.connection_free", __LINE__, 0};

static pthread_mutex_t srv__lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t srv__wake = PTHREAD_COND_INITIALIZER;
static srv_conn_t *srv__head;
static _Atomic uint64_t srv__count;
static unsigned srv__deadline_s;
static bool srv__running, srv__quit;
static pthread_t srv__thread;
static srv_counter_t *srv__timeouts;  /* request_timeouts */

/* Bytes the kernel has received on the socket, or 0 if it cannot say. */
static uint64_t srv__rx(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) return 0;
  if (len < offsetof(struct tcp_info, tcpi_bytes_received) +
                sizeof ti.tcpi_bytes_received)
    return 0;
  return ti.tcpi_bytes_received;
}

/* Answer 408 and close a connection whose request is overdue. Under
 * srv__lock, so fd is still this connection's socket. */
static void srv__cut(srv_conn_t *c) {
  char body[128], msg[320];
  int blen = snprintf(body, sizeof body,
                      "{\"error\":\"request not received within %u s "
                      "(--request-timeout)\"}",
                      srv__deadline_s);
  int n = snprintf(msg, sizeof msg,
                   "HTTP/1.1 408 Request Timeout\r\n"
                   "Connection: close\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s",
                   blen, body);
  /* Best effort: a client that does not read may not get it. */
  if (send(c->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
  }
  srv_counter_add(srv__timeouts, 1);
  /* libmicrohttpd sees the end of the stream and closes its side. */
  shutdown(c->fd, SHUT_RDWR);
}

static void srv__sweep(uint64_t now) {
  uint64_t deadline = (uint64_t)srv__deadline_s * 1000000000u;
  for (srv_conn_t *c = srv__head; c; c = c->next) {
    if (atomic_load(&c->phase) != SRV__WAITING) continue;
    uint64_t answered = atomic_load(&c->answered);
    uint64_t rx = srv__rx(c->fd);
    if (answered != c->seen) {
      /* A response completed since the last look: what arrived so far
       * is the baseline for the next request. */
      c->seen = answered;
      c->rx_base = rx;
      c->first_ns = 0;
      continue;
    }
    if (!c->first_ns) {
      /* The clock starts with the request's first byte (to within a
       * tick); an idle connection is libmicrohttpd's (--timeout). */
      if (rx > c->rx_base) c->first_ns = now;
      continue;
    }
    if (now - c->first_ns < deadline) continue;
    int want = SRV__WAITING;
    if (atomic_compare_exchange_strong(&c->phase, &want, SRV__CUT)) srv__cut(c);
  }
}

static void *srv__reaper(void *arg) {
  (void)arg;
  pthread_mutex_lock(&srv__lock);
  while (!srv__quit) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += SRV_CONNS_TICK_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&srv__wake, &srv__lock, &ts);
    if (!srv__quit) srv__sweep(srv_clock_mono_ns());
  }
  pthread_mutex_unlock(&srv__lock);
  return NULL;
}

int srv_conns_setup(void) {
  srv__timeouts = srv_counters_add(
      "request_timeouts", "connections answered 408 and closed: a request "
                          "not received whole within --request-timeout");
  return srv__timeouts ? SRV_OK : SRV_ENOMEM;
}

int srv_conns_start(unsigned deadline_s) {
  srv__deadline_s = deadline_s;
  srv__quit = false;
  if (!deadline_s) return SRV_OK;
  if (pthread_create(&srv__thread, NULL, srv__reaper, NULL)) return SRV_EIO;
  srv__running = true;
  return SRV_OK;
}

void srv_conns_stop(void) {
  if (!srv__running) return;
  pthread_mutex_lock(&srv__lock);
  srv__quit = true;
  pthread_cond_signal(&srv__wake);
  pthread_mutex_unlock(&srv__lock);
  pthread_join(srv__thread, NULL);
  srv__running = false;
}

srv_conn_t *srv_conns_open(int fd) {
  atomic_fetch_add(&srv__count, 1);
  if (fd < 0) return NULL;
  srv_conn_t *c = lab_try_calloc_at(1, sizeof *c, &srv__conn_site);
  if (!c) return NULL;
  c->fd = fd;
  pthread_mutex_lock(&srv__lock);
  c->next = srv__head;
  if (srv__head) srv__head->prev = c;
  srv__head = c;
  pthread_mutex_unlock(&srv__lock);
  return c;
}

void srv_conns_close(srv_conn_t *c) {
  atomic_fetch_sub(&srv__count, 1);
  if (!c) return;
  pthread_mutex_lock(&srv__lock);
  if (c->prev) c->prev->next = c->next;
  else srv__head = c->next;
  if (c->next) c->next->prev = c->prev;
  pthread_mutex_unlock(&srv__lock);
  lab_free_at(c, &srv__conn_free_site);
}

void srv_conns_answering(srv_conn_t *c) {
  if (!c) return;
  int want = SRV__WAITING;
  atomic_compare_exchange_strong(&c->phase, &want, SRV__ANSWERING);
}

void srv_conns_waiting(srv_conn_t *c) {
  if (!c) return;
  /* One writer: a plain store, no locked add, on every request. */
  atomic_store_explicit(
      &c->answered,
      atomic_load_explicit(&c->answered, memory_order_relaxed) + 1,
      memory_order_relaxed);
  int want = SRV__ANSWERING;
  atomic_compare_exchange_strong(&c->phase, &want, SRV__WAITING);
}

uint64_t srv_conns_count(void) { return atomic_load(&srv__count); }

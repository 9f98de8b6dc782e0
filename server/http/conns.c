/* conns.c - a registry of open connections under one mutex, oldest last,
 * and the reaper thread that enforces the deadlines. */
#define _GNU_SOURCE
#include "http/conns.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lab/alloc.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/err.h"

enum {
  SRV__WAITING,   /* the clock runs: a request should be arriving */
  SRV__ANSWERING, /* a response is produced or sent: no clock */
  SRV__CUT        /* shut down by the reaper or to make room */
};

#define SRV__ADDR_LEN 17 /* family byte + up to 16 address bytes */

struct srv_conn {
  srv_conn_t *prev, *next;    /* the registry, newest first (srv__lock) */
  int fd;
  bool admin;                 /* on the admin port: outside the limits */
  unsigned char addr[SRV__ADDR_LEN]; /* the client's address (zeros: none) */
  uint64_t opened_ns;         /* when it was accepted */
  _Atomic int phase;
  _Atomic bool request;       /* a request's head has been seen on it */
  _Atomic uint64_t answered;  /* responses completed on it; written only
                                 by the connection's own MHD thread */
  /* The reaper's own view, under srv__lock. */
  uint64_t seen;              /* `answered` when rx_base was taken */
  uint64_t rx_base;           /* bytes received by then */
  uint64_t first_ns;          /* when bytes past rx_base were first seen */
};

/* X(name, help): the conns' lifetime counters. */
#define SRV_CONNS_COUNTERS(X)                                                \
  X(request_timeouts, "connections answered 408 and closed: a request not "  \
                      "received whole within --request-timeout, or a first " \
                      "head within --header-timeout")                        \
  X(conns_refused, "connections closed at once: over "                       \
                   "--max-conns-per-client, or the server full with none "   \
                   "idle to close")                                          \
  X(conns_evicted, "idle connections closed to make room at --max-conns")    \
  X(conns_idle_closed, "connections closed having sent nothing within "      \
                       "--header-timeout of the accept")

static struct {
#define SRV__CONNS_FIELD(name, help) srv_counter_t *name;
  SRV_CONNS_COUNTERS(SRV__CONNS_FIELD)
#undef SRV__CONNS_FIELD
} srv__c;

static lab_site_t srv__conn_site = {__FILE__, "srv_conns_open",
                                    "http.connection", __LINE__, 0};
static lab_site_t srv__conn_free_site = {__FILE__, "srv_conns_close",
                                         "http.connection_free", __LINE__, 0};

static pthread_mutex_t srv__lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t srv__wake = PTHREAD_COND_INITIALIZER;
static srv_conn_t *srv__head, *srv__tail;
static _Atomic uint64_t srv__count;
static unsigned srv__main_n;          /* main-port connections (srv__lock) */
static srv_conns_config_t srv__cfg;
static srv_conns_notice_fn srv__notice;
static bool srv__running, srv__quit;
static pthread_t srv__thread;

int srv_conns_setup(void) {
#define SRV__CONNS_ADD(name, help)                                           \
  if (!(srv__c.name = srv_counters_add(#name, help))) return SRV_ENOMEM;
  SRV_CONNS_COUNTERS(SRV__CONNS_ADD)
#undef SRV__CONNS_ADD
  return SRV_OK;
}

void srv_conns_set_notice(srv_conns_notice_fn fn) { srv__notice = fn; }

/* The registry key of an address: its family and its bytes. */
static void srv__key(const struct sockaddr *sa, socklen_t len,
                     unsigned char out[SRV__ADDR_LEN]) {
  memset(out, 0, SRV__ADDR_LEN);
  if (!sa) return;
  if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    out[0] = 4;
    memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6 &&
             len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    out[0] = 6;
    memcpy(out + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  }
}

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

/* Close a connection from our side; libmicrohttpd sees the end of the
 * stream and closes its own. Under srv__lock, so fd is still this
 * connection's socket. */
static void srv__close(srv_conn_t *c) { shutdown(c->fd, SHUT_RDWR); }

/* Answer 408 and close a connection whose request is overdue. */
static void srv__cut(srv_conn_t *c, const char *why, unsigned s,
                     const char *option) {
  char body[160], msg[360];
  int blen = snprintf(body, sizeof body, "{\"error\":\"%s within %u s (%s)\"}",
                      why, s, option);
  int n = snprintf(msg, sizeof msg,
                   "HTTP/1.1 408 Request Timeout\r\n"
                   "Connection: close\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s",
                   blen, body);
  /* Best effort: a client that does not read may not get it. */
  if (send(c->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
  }
  srv_counter_add(srv__c.request_timeouts, 1);
  srv__close(c);
}

/* Whether c has sent nothing yet: no request head, never answered. */
static bool srv__unused(srv_conn_t *c) {
  return !atomic_load(&c->request) && !atomic_load(&c->answered) &&
         atomic_load(&c->phase) == SRV__WAITING;
}

static void srv__sweep(uint64_t now) {
  uint64_t deadline = (uint64_t)srv__cfg.deadline_s * 1000000000u;
  uint64_t head = (uint64_t)srv__cfg.head_timeout_s * 1000000000u;
  for (srv_conn_t *c = srv__head; c; c = c->next) {
    if (atomic_load(&c->phase) != SRV__WAITING) continue;
    uint64_t answered = atomic_load(&c->answered);
    uint64_t rx = srv__rx(c->fd);
    if (head && srv__unused(c) && now - c->opened_ns >= head) {
      int want = SRV__WAITING;
      if (!atomic_compare_exchange_strong(&c->phase, &want, SRV__CUT)) continue;
      if (rx) {
        srv__cut(c, "request head not received", srv__cfg.head_timeout_s,
                 "--header-timeout");
      } else {
        srv_counter_add(srv__c.conns_idle_closed, 1);
        srv__close(c);
      }
      continue;
    }
    if (!deadline) continue;
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
    if (atomic_compare_exchange_strong(&c->phase, &want, SRV__CUT))
      srv__cut(c, "request not received", srv__cfg.deadline_s,
               "--request-timeout");
  }
}

/* What was refused or closed since the last notice, in one sentence. */
static void srv__maybe_notice(uint64_t now, uint64_t *last_ns, uint64_t seen[3]) {
  uint64_t cur[3] = {srv_counter_get(srv__c.conns_refused),
                     srv_counter_get(srv__c.conns_evicted),
                     srv_counter_get(srv__c.conns_idle_closed)};
  if (!srv__notice || (cur[0] == seen[0] && cur[1] == seen[1] && cur[2] == seen[2]))
    return;
  if (now - *last_ns < (uint64_t)SRV_CONNS_NOTICE_MS * 1000000u) return;
  char text[160];
  snprintf(text, sizeof text,
           "connections: %llu refused (over %u per client, or full), %llu "
           "closed idle to make room, %llu closed having sent nothing",
           (unsigned long long)(cur[0] - seen[0]), srv__cfg.per_client,
           (unsigned long long)(cur[1] - seen[1]),
           (unsigned long long)(cur[2] - seen[2]));
  memcpy(seen, cur, sizeof cur);
  *last_ns = now;
  srv__notice(text);
}

static void *srv__reaper(void *arg) {
  (void)arg;
  uint64_t last_notice = 0, seen[3] = {0, 0, 0};
  /* Counters are lifetime figures: notices tell what is new. */
  seen[0] = srv_counter_get(srv__c.conns_refused);
  seen[1] = srv_counter_get(srv__c.conns_evicted);
  seen[2] = srv_counter_get(srv__c.conns_idle_closed);
  pthread_mutex_lock(&srv__lock);
  while (!srv__quit) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += SRV_CONNS_TICK_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&srv__wake, &srv__lock, &ts);
    if (srv__quit) break;
    uint64_t now = srv_clock_mono_ns();
    srv__sweep(now);
    pthread_mutex_unlock(&srv__lock);
    srv__maybe_notice(now, &last_notice, seen);
    pthread_mutex_lock(&srv__lock);
  }
  pthread_mutex_unlock(&srv__lock);
  return NULL;
}

int srv_conns_start(const srv_conns_config_t *cfg) {
  srv__cfg = *cfg;
  srv__quit = false;
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

/* Connections from the address `key` held now (cut ones aside); under
 * srv__lock. A scan, not a table: at most --max-conns entries, and only
 * on accept. */
static unsigned srv__same(const unsigned char key[SRV__ADDR_LEN],
                          const srv_conn_t *except) {
  unsigned same = 0;
  for (srv_conn_t *c = srv__head; c; c = c->next)
    if (c != except && !c->admin && !memcmp(c->addr, key, SRV__ADDR_LEN) &&
        atomic_load(&c->phase) != SRV__CUT)
      same++;
  return same;
}

bool srv_conns_admit(const struct sockaddr *addr, socklen_t len) {
  unsigned char key[SRV__ADDR_LEN];
  srv__key(addr, len, key);
  bool ok = true;
  pthread_mutex_lock(&srv__lock);
  if (srv__cfg.per_client && key[0] && srv__same(key, NULL) >= srv__cfg.per_client)
    ok = false;
  if (ok && srv__cfg.max_conns && srv__main_n >= srv__cfg.max_conns) {
    /* Full: close the oldest connection that has sent nothing. */
    ok = false;
    for (srv_conn_t *c = srv__tail; c; c = c->prev) {
      int want = SRV__WAITING;
      if (c->admin || !srv__unused(c) ||
          !atomic_compare_exchange_strong(&c->phase, &want, SRV__CUT))
        continue;
      srv__close(c);
      srv_counter_add(srv__c.conns_evicted, 1);
      ok = true;
      break;
    }
  }
  pthread_mutex_unlock(&srv__lock);
  if (!ok) srv_counter_add(srv__c.conns_refused, 1);
  return ok;
}

srv_conn_t *srv_conns_open(int fd, const struct sockaddr *addr, bool admin) {
  atomic_fetch_add(&srv__count, 1);
  srv_conn_t *c = fd < 0 ? NULL : lab_try_calloc_at(1, sizeof *c, &srv__conn_site);
  pthread_mutex_lock(&srv__lock);
  if (!c || !admin) srv__main_n++; /* as srv_conns_close counts it */
  if (c) {
    c->fd = fd;
    c->admin = admin;
    c->opened_ns = srv_clock_mono_ns();
    socklen_t len = addr && addr->sa_family == AF_INET6
                        ? (socklen_t)sizeof(struct sockaddr_in6)
                        : (socklen_t)sizeof(struct sockaddr_in);
    srv__key(addr, len, c->addr);
    c->next = srv__head;
    if (srv__head) srv__head->prev = c;
    else srv__tail = c;
    srv__head = c;
    /* The accept policy runs before the connection is registered, so a
     * burst accepted on several threads at once can pass it together:
     * the exact count is taken here, one connection at a time. */
    bool over = !admin && srv__cfg.per_client && c->addr[0] &&
                srv__same(c->addr, c) >= srv__cfg.per_client;
    if (over) {
      atomic_store(&c->phase, SRV__CUT);
      srv__close(c);
      srv_counter_add(srv__c.conns_refused, 1);
    }
  }
  pthread_mutex_unlock(&srv__lock);
  return c;
}

void srv_conns_close(srv_conn_t *c) {
  atomic_fetch_sub(&srv__count, 1);
  pthread_mutex_lock(&srv__lock);
  if (!c || !c->admin) srv__main_n--;
  if (c) {
    if (c->prev) c->prev->next = c->next;
    else srv__head = c->next;
    if (c->next) c->next->prev = c->prev;
    else srv__tail = c->prev;
  }
  pthread_mutex_unlock(&srv__lock);
  if (c) lab_free_at(c, &srv__conn_free_site);
}

void srv_conns_request(srv_conn_t *c) {
  if (c) atomic_store_explicit(&c->request, true, memory_order_relaxed);
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

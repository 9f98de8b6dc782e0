/* http.c - listening socket, MHD daemon, router, request scopes and
 * responses. */
#define _GNU_SOURCE
#include "http/http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/parse.h"
#include "http/conns.h"
#include "http/reqstats.h"

static struct MHD_Daemon *srv__daemon; /* --port */
static struct MHD_Daemon *srv__admin;  /* --admin-port, or NULL */
/* The daemons' closure values, telling the two apart. */
static char srv__main_tag, srv__admin_tag;
static srv_http_config_t srv__cfg;
static size_t srv__token_len;

/* Draining: every response says Connection: close. */
static _Atomic bool srv__draining;
static _Atomic uint64_t srv__started;   /* requests begun */
static _Atomic uint64_t srv__finished;  /* requests completed */
static _Atomic uint64_t srv__last_ns;   /* last request begun or ended */

static lab_site_t srv__req_site = {__FILE__, "srv__access", "http.request",
                                   __LINE__, 0};
static lab_site_t srv__body_site = {__FILE__, "srv__access", "http.body",
                                    __LINE__, 0};
static lab_site_t srv__free_site = {__FILE__, "srv__completed", "http.free",
                                    __LINE__, 0};
static lab_site_t srv__resp_free_site = {__FILE__, "srv__response_free",
                                         "http.response_free", __LINE__, 0};

/* Response buffers are charged to "<route id>.response", named when the
 * daemon starts (every route is registered by then). */
static lab_site_t srv__resp_sites[SRV_ROUTE_SLOTS];
static char srv__resp_names[SRV_ROUTE_SLOTS][48];

static srv_http_hooks_t srv__hooks[SRV_HTTP_HOOKS_MAX];
static int srv__nhooks;
static srv_counter_t *srv__body_bytes;

int srv_http_setup(void) {
  srv__body_bytes = srv_counters_add("body_bytes", "request body bytes received");
  int err = srv_reqstats_setup();
  if (!err) err = srv_conns_setup();
  return srv__body_bytes ? err : SRV_ENOMEM;
}

int srv_http_add_hooks(const srv_http_hooks_t *h) {
  if (srv__nhooks == SRV_HTTP_HOOKS_MAX) return SRV_E2BIG;
  srv__hooks[srv__nhooks++] = *h;
  return SRV_OK;
}

static void srv__name_sites(void) {
  for (int r = 0; r < SRV_ROUTE_SLOTS; r++) {
    snprintf(srv__resp_names[r], sizeof srv__resp_names[r], "%s.response",
             srv_route_id(r < srv_router_count() ? r : SRV_ROUTE_OTHER));
    srv__resp_sites[r] = (lab_site_t){__FILE__, "srv_http_send",
                                      srv__resp_names[r], __LINE__, 0};
  }
}

const lab_site_t *srv_http_site(srv_route_t route) {
  if (route < 0 || route >= srv_router_count()) route = SRV_ROUTE_OTHER;
  if (route != SRV_ROUTE_OTHER && srv_route_has(route, SRV_ROUTE_ADMIN)) return SRV_MEM_OUTSIDE;
  return &srv__resp_sites[route];
}

/* ---- listening socket ---- */

int srv_http_listen(const char *addr, unsigned port, int *fd,
                    unsigned *actual) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char service[16];
  snprintf(service, sizeof service, "%u", port);
  int rc = getaddrinfo(addr, service, &hints, &res);
  if (rc) {
    fprintf(stderr, "leaklab: cannot resolve bind address '%s': %s\n", addr,
            gai_strerror(rc));
    return SRV_EIO;
  }
  int s = -1;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (s < 0) continue;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!bind(s, ai->ai_addr, ai->ai_addrlen) && !listen(s, 1024)) break;
    close(s);
    s = -1;
  }
  freeaddrinfo(res);
  if (s < 0) {
    fprintf(stderr, "leaklab: cannot listen on %s:%u: %m\n", addr, port);
    return SRV_EIO;
  }
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  unsigned p = port;
  if (!getsockname(s, (struct sockaddr *)&ss, &len)) {
    if (ss.ss_family == AF_INET)
      p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  *fd = s;
  *actual = p;
  return SRV_OK;
}

/* ---- responses ---- */

static void srv__response_free(void *p) { lab_free_at(p, &srv__resp_free_site); }

/* The request this thread is working on, for srv_http_note_oom. */
static __thread srv_req_t *srv__current;

void srv_http_note_oom(size_t size, const char *site) {
  srv_req_t *rq = srv__current;
  if (!rq || rq->oom_size) return;
  rq->oom_size = size ? size : 1;
  snprintf(rq->oom_site, sizeof rq->oom_site, "%s", site ? site : "?");
}

/* What a request that was refused memory answers, whatever its handler
 * made of the refusal (cJSON says "malformed", a handler may give up):
 * one 503, its text formatted here and copied by libmicrohttpd. */
static struct MHD_Response *srv__oom_response(const srv_req_t *rq) {
  char msg[256];
  int n = snprintf(msg, sizeof msg,
                   "{\"error\":\"out of memory: the heap refused %zu bytes at %s\","
                   "\"size\":%zu,\"site\":\"%s\"}\n",
                   rq->oom_size, rq->oom_site, rq->oom_size, rq->oom_site);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
  return MHD_create_response_from_buffer(len, msg, MHD_RESPMEM_MUST_COPY);
}

/* Add the headers and queue the response; it is destroyed once MHD is
 * done with it. */
static void srv__queue(srv_req_t *rq, unsigned status, const char *ctype,
                       struct MHD_Response *r) {
  if (rq->oom_size) {
    if (r) MHD_destroy_response(r);
    r = srv__oom_response(rq);
    status = 503;
    ctype = "application/json";
  }
  if (!r) return;
  /* A draining worker sends its clients to the next one; a heap near its
   * budget sheds connections before it must shed requests (Envoy's
   * overload manager disables keep-alive at 95 %). */
  if (rq->close || atomic_load_explicit(&srv__draining, memory_order_relaxed))
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
  if (ctype) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == 405) {
    char allow[64];
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                            srv_route_allow(rq->route, allow, sizeof allow));
  } else if (status == 401) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  } else if (status == 503) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  }
  if (MHD_queue_response(rq->conn, status, r) == MHD_YES) {
    rq->status = status;
    srv_conns_answering(rq->cn);
  }
  MHD_destroy_response(r);
}

void srv_http_send(srv_req_t *rq, unsigned status, const char *ctype,
                   char *buf, size_t len) {
  if (!buf) {
    srv_http_send_static(rq, 500, "application/json",
                         "{\"error\":\"out of memory\"}");
    return;
  }
  bool outside = srv_http_site(rq->route) == SRV_MEM_OUTSIDE;
  if (!outside) lab_detach(buf);
  struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
      len, buf, outside ? free : srv__response_free);
  if (!r) {
    if (outside) free(buf);
    else lab_free_at(buf, &srv__resp_free_site);
    return;
  }
  srv__queue(rq, status, ctype, r);
}

void srv_http_send_copy(srv_req_t *rq, unsigned status, const char *ctype,
                        const void *p, size_t len) {
  srv__queue(rq, status, ctype,
             MHD_create_response_from_buffer(len, (void *)p,
                                             MHD_RESPMEM_MUST_COPY));
}

void srv_http_send_asset(srv_req_t *rq, const char *ctype, const void *p,
                         size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      len, (void *)p, MHD_RESPMEM_PERSISTENT);
  if (!r) return;
  /* The page loads only its own files, and nothing it shows is HTML from
   * a client (see the dashboard's app.js). */
  MHD_add_response_header(r, "Content-Security-Policy",
                          "default-src 'self'; style-src 'self' 'unsafe-inline'");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  srv__queue(rq, 200, ctype, r);
}

void srv_http_send_static(srv_req_t *rq, unsigned status, const char *ctype,
                          const char *text) {
  srv__queue(rq, status, ctype,
             MHD_create_response_from_buffer(strlen(text), (void *)text,
                                             MHD_RESPMEM_PERSISTENT));
}

void srv_http_json_init(srv_req_t *rq, srv_json_t *j) {
  srv_json_init(j, srv_http_site(rq->route));
}

void srv_http_send_json(srv_req_t *rq, unsigned status, srv_json_t *j) {
  if (j->buf.failed) {
    srv_buf_free(&j->buf);
    srv_http_send_static(rq, 500, "application/json",
                         "{\"error\":\"out of memory\"}");
    return;
  }
  srv_buf_append(&j->buf, "\n", 1);
  size_t len;
  char *p = srv_buf_take(&j->buf, &len);
  srv_http_send(rq, status, "application/json", p, len);
}

static void srv__error_doc(srv_req_t *rq, unsigned status, const char *msg,
                           const char *flag) {
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_str(&j, "error", msg);
  if (flag) srv_json_str(&j, "flag", flag);
  if (status == 405) {
    char allow[64];
    srv_json_str(&j, "allow", srv_route_allow(rq->route, allow, sizeof allow));
  }
  srv_json_end(&j);
  srv_http_send_json(rq, status, &j);
}

void srv_http_error(srv_req_t *rq, unsigned status, const char *fmt, ...) {
  char raw[256], msg[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  /* Messages quote what clients sent (paths, query keys): keep the JSON
   * valid UTF-8 whatever the bytes were, and never cut a character. */
  size_t len = n < 0 ? 0 : (size_t)n < sizeof raw ? (size_t)n : sizeof raw - 1;
  srv_parse_utf8(msg, sizeof msg, raw, len);
  srv__error_doc(rq, status, msg, NULL);
}

void srv_http_error_flag(srv_req_t *rq, unsigned status, const char *flag,
                         const char *msg) {
  srv__error_doc(rq, status, msg, flag);
}

/* ---- query strings and headers ---- */

const char *srv_http_query(srv_req_t *rq, const char *key) {
  return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct srv__query_check {
  const char *const *allowed;
  const char *bad;
} srv__query_check_t;

static enum MHD_Result srv__query_iter(void *cls, enum MHD_ValueKind kind,
                                       const char *key, const char *value) {
  (void)kind;
  (void)value;
  srv__query_check_t *c = cls;
  for (const char *const *a = c->allowed; a && *a; a++)
    if (!strcmp(*a, key)) return MHD_YES;
  c->bad = key;
  return MHD_NO;
}

bool srv_http_query_only(srv_req_t *rq, const char *const *allowed) {
  srv__query_check_t c = {allowed, NULL};
  MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, srv__query_iter,
                            &c);
  if (!c.bad) return true;
  srv_http_error(rq, 400, "unknown query parameter '%.64s'", c.bad);
  return false;
}

bool srv_http_query_u64(srv_req_t *rq, const char *key, uint64_t min,
                        uint64_t max, uint64_t *out) {
  const char *v = srv_http_query(rq, key);
  if (!v) return true;
  char *end = NULL;
  unsigned long long n = 0;
  bool ok = *v >= '0' && *v <= '9';
  if (ok) {
    errno = 0;
    n = strtoull(v, &end, 10);
    ok = !errno && !*end && n >= min && n <= max;
  }
  if (!ok) {
    srv_http_error(rq, 400,
                   "query parameter '%s' must be a whole number from %llu "
                   "to %llu",
                   key, (unsigned long long)min, (unsigned long long)max);
    return false;
  }
  *out = n;
  return true;
}

bool srv_http_authorized(srv_req_t *rq) {
  if (!srv__cfg.admin_token || !srv__token_len) return true;
  const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncmp(h, "Bearer ", 7)) return false;
  const char *got = h + 7;
  size_t glen = strlen(got);
  const char *want = srv__cfg.admin_token;
  /* Time depends on the token's length only, not on where they differ. */
  volatile unsigned char diff = glen != srv__token_len;
  for (size_t i = 0; i < srv__token_len; i++)
    diff |= (unsigned char)((i < glen ? got[i] : 0) ^ want[i]);
  return diff == 0;
}

/* ---- the request cycle ---- */

/* When each thread's running handler began (0: none), one slot per
 * thread, taken on its first request. */
static _Atomic uint64_t srv__handler_since[SRV_HTTP_THREADS_MAX];
static _Atomic unsigned srv__handler_slots;
static __thread int srv__handler_slot = -1;

uint64_t srv_http_handler_ns(uint64_t now_ns) {
  uint64_t worst = 0;
  unsigned n = atomic_load(&srv__handler_slots);
  for (unsigned i = 0; i < n && i < SRV_HTTP_THREADS_MAX; i++) {
    uint64_t t = atomic_load_explicit(&srv__handler_since[i], memory_order_relaxed);
    if (t && now_ns > t && now_ns - t > worst) worst = now_ns - t;
  }
  return worst;
}

/* Run a handler (the route's, or a wait's `then`), its time watched
 * (srv_http_handler_ns). */
static void srv__run_handler(srv_req_t *rq, srv_route_fn fn) {
  if (srv__handler_slot < 0) {
    unsigned i = atomic_fetch_add(&srv__handler_slots, 1);
    srv__handler_slot = i < SRV_HTTP_THREADS_MAX ? (int)i : SRV_HTTP_THREADS_MAX;
  }
  _Atomic uint64_t *since = srv__handler_slot < SRV_HTTP_THREADS_MAX
                                ? &srv__handler_since[srv__handler_slot]
                                : NULL;
  if (since) atomic_store_explicit(since, srv_clock_mono_ns(), memory_order_relaxed);
  /* The app's handlers meet the memory limit as it is; the observer's
   * keep the reserve. */
  bool app = !srv_route_has(rq->route, SRV_ROUTE_ADMIN);
  uint64_t reserve = app ? lab_set_reserve(0) : 0;
  fn(rq);
  if (app) lab_set_reserve(reserve);
  if (since) atomic_store_explicit(since, 0, memory_order_relaxed);
}

static void srv__dispatch(srv_req_t *rq) {
  if (rq->body_too_big) {
    srv_http_error(rq, 413, "request body over the limit of %zu bytes",
                   srv__cfg.max_body);
    return;
  }
  if (rq->route == SRV_ROUTE_OTHER) {
    srv_http_error(rq, 404, "no such path: %.200s", rq->url);
    return;
  }
  if (!(srv_route_methods(rq->route) & rq->method)) {
    srv_http_error(rq, 405, "method not allowed on %s",
                   srv_route_path(rq->route));
    return;
  }
  if (rq->refuse) {
    srv_http_error(rq, 503, "%s", rq->refuse);
    return;
  }
  srv__run_handler(rq, srv_route_handler(rq->route));
  if (!rq->status && !rq->then) srv_http_error(rq, 500, "the handler sent no response");
}

/* ---- waits: a handler that must wait holds no thread ---- */

static pthread_mutex_t srv__wait_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t srv__wait_cond;
static srv_req_t *srv__waits[SRV_HTTP_WAITS_MAX]; /* NULL: free */
static pthread_t srv__waiter;
static bool srv__waiter_on, srv__waiter_stop;

/* The waits' clock: resumes each suspended connection when its time
 * comes, or at once when the worker drains (its answer then covers the
 * time it waited). */
static void *srv__waiter_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&srv__wait_lock);
  while (!srv__waiter_stop) {
    uint64_t now = srv_clock_mono_ns(), next = now + 1000000000u;
    bool all = atomic_load(&srv__draining);
    for (int i = 0; i < SRV_HTTP_WAITS_MAX; i++) {
      srv_req_t *rq = srv__waits[i];
      if (!rq) continue;
      if (all || rq->wake_ns <= now) {
        srv__waits[i] = NULL;
        rq->woken = true;
        MHD_resume_connection(rq->conn);
      } else if (rq->wake_ns < next) {
        next = rq->wake_ns;
      }
    }
    struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
    pthread_cond_timedwait(&srv__wait_cond, &srv__wait_lock, &ts);
  }
  pthread_mutex_unlock(&srv__wait_lock);
  return NULL;
}

/* Start the waits' clock, on the first wait; under srv__wait_lock. */
static int srv__waiter_start(void) {
  if (srv__waiter_on) return SRV_OK;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&srv__wait_cond, &ca);
  pthread_condattr_destroy(&ca);
  srv__waiter_stop = false;
  if (pthread_create(&srv__waiter, NULL, srv__waiter_main, NULL)) return SRV_EIO;
  srv__waiter_on = true;
  return SRV_OK;
}

/* Stop the waits' clock (after the daemons stopped). */
static void srv__waiter_join(void) {
  pthread_mutex_lock(&srv__wait_lock);
  bool on = srv__waiter_on;
  srv__waiter_stop = true;
  if (on) pthread_cond_signal(&srv__wait_cond);
  pthread_mutex_unlock(&srv__wait_lock);
  if (on) pthread_join(srv__waiter, NULL);
  srv__waiter_on = false;
}

int srv_http_wait(srv_req_t *rq, uint64_t ms, srv_route_fn then,
                  void (*drop)(void *ctx), void *ctx) {
  pthread_mutex_lock(&srv__wait_lock);
  int slot = -1;
  for (int i = 0; i < SRV_HTTP_WAITS_MAX && slot < 0; i++)
    if (!srv__waits[i]) slot = i;
  if (slot < 0 || srv__waiter_start()) {
    pthread_mutex_unlock(&srv__wait_lock);
    return SRV_EBUSY;
  }
  rq->then = then;
  rq->drop = drop;
  rq->wait_ctx = ctx;
  rq->woken = false;
  rq->wake_ns = srv_clock_mono_ns() + ms * 1000000u;
  /* Suspended before the clock can resume it. */
  MHD_suspend_connection(rq->conn);
  srv__waits[slot] = rq;
  pthread_cond_signal(&srv__wait_cond);
  pthread_mutex_unlock(&srv__wait_lock);
  /* Not a request arriving slowly: the deadline's clock stops. */
  srv_conns_answering(rq->cn);
  return SRV_OK;
}

/* A wait whose time came: run its `then`, once. */
static void srv__resumed(srv_req_t *rq) {
  srv_route_fn then = rq->then;
  rq->then = NULL;
  rq->drop = NULL;
  srv__run_handler(rq, then);
  rq->wait_ctx = NULL;
  if (!rq->status) srv_http_error(rq, 500, "the handler sent no response");
}

/* A request ends: if it still waits, forget it and drop its state. */
static void srv__wait_end(srv_req_t *rq) {
  if (!rq->then) return;
  pthread_mutex_lock(&srv__wait_lock);
  for (int i = 0; i < SRV_HTTP_WAITS_MAX; i++)
    if (srv__waits[i] == rq) srv__waits[i] = NULL;
  pthread_mutex_unlock(&srv__wait_lock);
  if (rq->drop) rq->drop(rq->wait_ctx);
  rq->then = NULL;
  rq->wait_ctx = NULL;
}

/* Keep an upload chunk, up to the body limit. */
static void srv__body_append(srv_req_t *rq, const char *data, size_t n) {
  srv_counter_add(srv__body_bytes, n);
  if (rq->body_too_big || rq->refuse) return;
  if (rq->body_len + n > srv__cfg.max_body) {
    rq->body_too_big = true;
    return;
  }
  if (rq->body_len + n + 1 > rq->body_cap) {
    /* Double from 1 KiB, to at most what Content-Length announced (when it
     * still holds), so a body that arrives as promised ends in a block of
     * its exact size. */
    size_t need = rq->body_len + n + 1;
    size_t cap = rq->body_cap ? rq->body_cap * 2 : 1024;
    while (cap < need) cap *= 2;
    if (rq->body_want + 1 >= need && cap > rq->body_want + 1) cap = rq->body_want + 1;
    char *p = lab_try_realloc_at(rq->body, cap, &srv__body_site);
    if (!p) {
      rq->body_too_big = true;
      return;
    }
    rq->body = p;
    rq->body_cap = cap;
  }
  memcpy(rq->body + rq->body_len, data, n);
  rq->body_len += n;
  rq->body[rq->body_len] = '\0';
}

static enum MHD_Result srv__serve(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *upload_data,
                                  size_t *upload_size, void **con_cls);

/* Every call for a request: with the reserve past the memory limit, and
 * the request known to srv_http_note_oom. */
static enum MHD_Result srv__access(void *cls, struct MHD_Connection *conn,
                                   const char *url, const char *method,
                                   const char *version,
                                   const char *upload_data,
                                   size_t *upload_size, void **con_cls) {
  (void)version;
  uint64_t reserve = lab_set_reserve(SRV_HTTP_RESERVE_BYTES);
  enum MHD_Result r = srv__serve(cls, conn, url, method, upload_data, upload_size, con_cls);
  srv__current = NULL;
  lab_set_reserve(reserve);
  return r;
}

static enum MHD_Result srv__serve(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
  srv_req_t *rq = *con_cls;
  if (!rq) {
    /* First call: headers are in. The request object lives outside the
     * scope: the completion hook needs it after the scope is closed. */
    lab_scope_enter(NULL);
    rq = lab_try_calloc_at(1, sizeof *rq, &srv__req_site);
    if (!rq) return MHD_NO;
    srv__current = rq;
    rq->t0_ns = srv_clock_mono_ns();
    rq->conn = conn;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    rq->cn = ci ? ci->socket_context : NULL;
    rq->url = url;
    rq->route = srv_route_match(url);
    /* The admin port serves the observer only. */
    if (cls == &srv__admin_tag && !srv_route_has(rq->route, SRV_ROUTE_ADMIN))
      rq->route = SRV_ROUTE_OTHER;
    rq->method = srv_route_method(method);
    srv_conns_request(rq->cn);
    rq->scope = lab_scope_open(srv_route_path(rq->route));
    *con_cls = rq;
    atomic_fetch_add(&srv__started, 1);
    atomic_store_explicit(&srv__last_ns, rq->t0_ns, memory_order_relaxed);
    /* A begin hook may end keep-alive or refuse the request as soon as
     * its headers are in: its body is then read and dropped, nothing is
     * allocated for it. */
    for (int i = 0; i < srv__nhooks; i++)
      if (srv__hooks[i].begin) srv__hooks[i].begin(rq);
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && !rq->refuse) {
      unsigned long long n = strtoull(cl, NULL, 10);
      if (n > srv__cfg.max_body) {
        rq->body_too_big = true;
        srv__dispatch(rq); /* 413 now, before the body is read */
      } else {
        /* Only remembered: memory follows the bytes that arrive, not the
         * bytes a client promises (400 idle promises of 1 MiB were 400 MiB
         * of heap before a byte came). */
        rq->body_want = (size_t)n;
      }
    }
    lab_scope_enter(NULL);
    return MHD_YES;
  }
  srv__current = rq;
  lab_scope_enter(rq->scope);
  if (*upload_size) {
    if (!rq->status) srv__body_append(rq, upload_data, *upload_size);
    *upload_size = 0;
  } else if (rq->then) {
    if (rq->woken) srv__resumed(rq);
  } else if (!rq->status) {
    srv__dispatch(rq);
  }
  lab_scope_enter(NULL);
  return MHD_YES;
}

static void srv__completed(void *cls, struct MHD_Connection *conn,
                           void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  srv_req_t *rq = *con_cls;
  if (!rq) return;
  *con_cls = NULL;
  srv__wait_end(rq);
  srv_conns_waiting(rq->cn);
  lab_free_at(rq->body, &srv__free_site);
  for (int i = 0; i < srv__nhooks; i++)
    if (srv__hooks[i].end) srv__hooks[i].end(rq);
  if (rq->scope) {
    lab_scope_report_t rep;
    lab_scope_close(rq->scope, 0, &rep);
    rq->scope = NULL;
  }
  uint64_t now = srv_clock_mono_ns();
  if (rq->status) {
    srv_reqstats_done(rq->route, rq->status, now - rq->t0_ns);
    for (int i = 0; i < srv__nhooks; i++)
      if (srv__hooks[i].done) srv__hooks[i].done(rq, now - rq->t0_ns);
  }
  lab_free_at(rq, &srv__free_site);
  atomic_store_explicit(&srv__last_ns, now, memory_order_relaxed);
  atomic_fetch_add(&srv__finished, 1);
}

static void srv__connection(void *cls, struct MHD_Connection *conn,
                            void **socket_ctx,
                            enum MHD_ConnectionNotificationCode toe) {
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *socket_ctx = srv_conns_open(ci ? ci->connect_fd : -1,
                                 ai ? ai->client_addr : NULL,
                                 cls == &srv__admin_tag);
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    srv_conns_close(*socket_ctx);
    *socket_ctx = NULL;
  }
}

/* The main port's accept policy: the per-client limit, and room at
 * --max-conns (conns.h). */
static enum MHD_Result srv__accept(void *cls, const struct sockaddr *addr,
                                   socklen_t len) {
  (void)cls;
  return srv_conns_admit(addr, len) ? MHD_YES : MHD_NO;
}

/* Start one daemon on a listening socket. */
static struct MHD_Daemon *srv__start_daemon(int fd, unsigned threads,
                                            unsigned limit, unsigned timeout_s,
                                            char *tag, bool policy) {
  struct MHD_OptionItem ops[9];
  int k = 0;
  if (fd >= 0)
    ops[k++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
  ops[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                     (intptr_t)srv__completed, NULL};
  ops[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                     (intptr_t)srv__connection, tag};
  ops[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                     (intptr_t)limit, NULL};
  ops[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                     (intptr_t)timeout_s, NULL};
  if (threads > 1)
    ops[k++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                       (intptr_t)threads, NULL};
  ops[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  /* poll(), not epoll. With an epoll thread pool, MHD_quiesce_daemon
   * removes the listening socket from each pool thread's epoll set and
   * panics if that fails, while a pool thread that has already seen the
   * quiesce flag may have removed it first: a race that would abort the
   * old worker in the middle of a handover. With poll() a quiesced thread
   * just leaves the socket out of its next poll set; MHD_USE_ITC wakes it
   * to do so. (On 64 connections poll() is no slower: BENCHMARKS.md.) */
  unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
  if (fd < 0) flags |= MHD_USE_NO_LISTEN_SOCKET;
  return MHD_start_daemon(flags, 0,
                          policy ? srv__accept : NULL, NULL, srv__access, tag,
                          MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
}

int srv_http_start(const srv_http_config_t *cfg, int listen_fd, int admin_fd) {
  srv__cfg = *cfg;
  srv__name_sites();
  srv__token_len = cfg->admin_token ? strlen(cfg->admin_token) : 0;
  srv_conns_config_t cc = {
      .deadline_s = cfg->request_timeout_s,
      .head_timeout_s = cfg->header_timeout_s,
      .max_conns = cfg->max_conns,
      .per_client = cfg->max_conns_per_client,
  };
  if (srv_conns_start(&cc)) {
    fprintf(stderr, "leaklab: cannot start the connection reaper thread\n");
    return SRV_EIO;
  }
  /* libmicrohttpd's own limit leaves room above --max-conns for the
   * connections the accept policy closes to make room, which go only
   * once libmicrohttpd sees them end. */
  srv__daemon = srv__start_daemon(listen_fd, cfg->threads,
                                  cfg->max_conns + SRV_HTTP_EVICT_ROOM,
                                  cfg->timeout_s, &srv__main_tag, true);
  if (srv__daemon && admin_fd >= 0)
    srv__admin = srv__start_daemon(admin_fd, 1, SRV_HTTP_ADMIN_CONNS,
                                   cfg->timeout_s, &srv__admin_tag, false);
  if (!srv__daemon || (admin_fd >= 0 && !srv__admin)) {
    fprintf(stderr, "leaklab: libmicrohttpd would not start\n");
    if (srv__daemon) MHD_stop_daemon(srv__daemon);
    srv__daemon = NULL;
    srv_conns_stop();
    return SRV_EIO;
  }
  return SRV_OK;
}

int srv_http_add_connection(int fd) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!srv__daemon ||
      MHD_add_connection(srv__daemon, fd, (const struct sockaddr *)&sa, sizeof sa) != MHD_YES)
    return SRV_EIO;
  return SRV_OK;
}

void srv_http_drain(unsigned max_ms, unsigned idle_ms, srv_http_drain_t *out) {
  srv_http_drain_t d = {0, 0, false};
  if (!srv__daemon) {
    if (out) *out = d;
    return;
  }
  uint64_t t0 = srv_clock_mono_ns();
  uint64_t begun = atomic_load(&srv__started);
  atomic_store(&srv__draining, true);
  /* From here the shared socket's queue is the next worker's alone; what
   * this worker accepted, and what its open connections still send, it
   * answers with Connection: close. */
  MHD_socket ls = MHD_quiesce_daemon(srv__daemon);
  MHD_socket as = srv__admin ? MHD_quiesce_daemon(srv__admin) : MHD_INVALID_SOCKET;
  /* Waiting requests answer now, with what they have. */
  pthread_mutex_lock(&srv__wait_lock);
  if (srv__waiter_on) pthread_cond_signal(&srv__wait_cond);
  pthread_mutex_unlock(&srv__wait_lock);
  for (;;) {
    uint64_t now = srv_clock_mono_ns();
    if (!srv_conns_count()) break;
    /* Only idle keep-alive connections left, and for a while: a client
     * that sends nothing more. wrk-like clients send their next request
     * at once and are answered (with close) long before this. */
    uint64_t in_flight = atomic_load(&srv__started) - atomic_load(&srv__finished);
    uint64_t last = atomic_load_explicit(&srv__last_ns, memory_order_relaxed);
    if (!in_flight && now > last && now - last >= (uint64_t)idle_ms * 1000000u &&
        now - t0 >= (uint64_t)idle_ms * 1000000u)
      break;
    if (now - t0 >= (uint64_t)max_ms * 1000000u) {
      d.timed_out = true;
      break;
    }
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
  }
  d.ms = (srv_clock_mono_ns() - t0) / 1000000u;
  d.requests = atomic_load(&srv__started) - begun;
  MHD_stop_daemon(srv__daemon);
  srv__daemon = NULL;
  if (srv__admin) MHD_stop_daemon(srv__admin);
  srv__admin = NULL;
  srv__waiter_join();
  srv_conns_stop();
  /* The caller owns the quiesced sockets, and may close them only now. */
  if (ls != MHD_INVALID_SOCKET) close(ls);
  if (as != MHD_INVALID_SOCKET) close(as);
  if (out) *out = d;
}

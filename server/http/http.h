/* http.h - the HTTP layer on libmicrohttpd: listening socket, daemon,
 * router, per-request heap scopes and responses whose buffers the heap
 * frees through MHD's free callback.
 *
 * Every request opens a heap scope labelled with its route on its first
 * call and closes it when MHD reports the request complete (an end hook,
 * such as the request-scope guard, may close it first and free what the
 * request left behind). Response buffers are detached from the scope
 * first: MHD owns them until its free callback runs.
 *
 * The layers above plug in without this one knowing them: routes through
 * the router (router.h), and hooks called at three points of every
 * request (srv_http_add_hooks). */
#ifndef SRV_HTTP_H
#define SRV_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "core/json.h"
#include "http/router.h"

struct MHD_Connection;
struct srv_conn;

typedef struct srv_http_config {
  unsigned threads;         /* MHD pool threads; 1 = one internal thread */
  unsigned max_conns;       /* connection limit */
  unsigned timeout_s;       /* idle connection timeout */
  unsigned request_timeout_s; /* a request must arrive within this (conns.h) */
  unsigned header_timeout_s; /* a first head within this of the accept */
  unsigned max_conns_per_client; /* connections from one address */
  size_t max_body;          /* request body limit (413 beyond) */
  const char *admin_token;  /* bearer token for flag changes, or NULL */
} srv_http_config_t;

/* One request, from its first call to its completion. */
typedef struct srv_req {
  struct MHD_Connection *conn; /* MHD's connection */
  struct srv_conn *cn;      /* its deadline clock (conns.h), or NULL */
  const char *url;          /* the path, without the query string */
  srv_route_t route;        /* what it matched */
  unsigned method;          /* SRV_M_* */
  lab_scope_t *scope;       /* its heap scope (NULL if none could open) */
  char *body;               /* request body, NUL-terminated, or NULL */
  size_t body_len;          /* its length */
  size_t body_cap;          /* bytes allocated for it */
  size_t body_want;         /* what Content-Length announced (0: none) */
  bool body_too_big;        /* more than max_body arrived */
  const char *refuse;       /* set by a begin hook: answer 503 with this
                               message, and read and drop the body */
  bool close;               /* answer with Connection: close (set by a
                               begin hook, e.g. the heap near its budget) */
  uint64_t t0_ns;           /* monotonic time of the first call */
  unsigned status;          /* status queued, 0 until a response is */
  size_t oom_size;          /* an allocation of this many bytes was refused
                               while it ran (0: none): it answers 503 */
  char oom_site[48];        /* ... at this site */
  srv_route_fn then;        /* waiting (srv_http_wait): what runs when
                               the wait ends, or NULL */
  void (*drop)(void *ctx);  /* ... or frees wait_ctx if it never runs */
  void *wait_ctx;           /* the waiting handler's state */
  uint64_t wake_ns;         /* monotonic time the wait ends */
  bool woken;               /* the wait ended: `then` may run */
} srv_req_t;

/* Hooks a layer above adds to every request; any may be NULL. */
typedef struct srv_http_hooks {
  void (*begin)(srv_req_t *rq);  /* headers are in, route matched, scope
                                    open, nothing allocated for the body */
  void (*end)(srv_req_t *rq);    /* the request completed; its scope is
                                    still open (a hook may close it and set
                                    rq->scope to NULL) */
  void (*done)(srv_req_t *rq, uint64_t latency_ns); /* it was answered
                                    (rq->status set) and counted */
} srv_http_hooks_t;

#define SRV_HTTP_HOOKS_MAX 8

/* Bytes past the heap's memory limit (lab_set_limit) that the HTTP layer
 * and the observer's routes may use, so that they go on answering while
 * the app's handlers are refused: requests' own state, bodies, the JSON
 * API, /metrics, the page. */
#define SRV_HTTP_RESERVE_BYTES (16u << 20)

/* Say that an allocation of `size` bytes at `site` was refused on this
 * thread: the request it runs, if any, answers 503 "out of memory" instead
 * of what its handler sends. Allocates nothing. */
void srv_http_note_oom(size_t size, const char *site);

/* Requests that may wait at once (srv_http_wait), per worker. */
#define SRV_HTTP_WAITS_MAX 16

/* Handlers never sleep or block: a thread held is a thread that serves
 * nobody, and a handler that does not return looks hung to the
 * supervisor. A handler that must wait (a profile over N seconds) calls
 * this and returns: the connection is suspended, holding no thread, and
 * counted by neither the request deadline nor the hung-worker watch;
 * after ms, or as soon as the worker drains, `then` runs as the handler
 * would, in the request's scope, with rq->wait_ctx = ctx, and answers.
 * If the request ends first, drop(ctx) runs instead (drop may be NULL).
 * SRV_EBUSY, changing nothing, when SRV_HTTP_WAITS_MAX requests already
 * wait: the handler then answers (503) itself. */
int srv_http_wait(srv_req_t *rq, uint64_t ms, srv_route_fn then,
                  void (*drop)(void *ctx), void *ctx);

/* Make the HTTP layer's blocks in the shared region and register its
 * counters; before the first fork. SRV_ENOMEM. */
int srv_http_setup(void);
/* Add a set of hooks (copied), called in the order added; SRV_E2BIG. */
int srv_http_add_hooks(const srv_http_hooks_t *h);

/* Open a listening TCP socket on addr:port (port 0: any free one);
 * returns the socket in *fd and the port in *actual. SRV_EIO on failure
 * (message on stderr). */
int srv_http_listen(const char *addr, unsigned port, int *fd,
                    unsigned *actual);
#define SRV_HTTP_EVICT_ROOM 64  /* libmicrohttpd's limit above max_conns */
#define SRV_HTTP_ADMIN_CONNS 16 /* connections the admin port serves */

/* Start the daemon on a listening socket (listen_fd < 0: none, for
 * srv_http_add_connection only), and, if admin_fd >= 0, the admin
 * daemon on that one: one thread, SRV_HTTP_ADMIN_CONNS connections, the
 * routes with SRV_ROUTE_ADMIN only, outside the per-client limit and
 * --max-conns, so no flood on the main port blinds the observer. SRV_EIO
 * on failure. */
int srv_http_start(const srv_http_config_t *cfg, int listen_fd, int admin_fd);
/* Hand a connected socket to the main daemon as if it had been accepted
 * from 127.0.0.1 (the daemon then owns fd): for the fuzz target that
 * speaks HTTP through a socketpair. SRV_EIO if refused. */
int srv_http_add_connection(int fd);

/* What a drain did. */
typedef struct srv_http_drain {
  uint64_t ms;              /* how long it took */
  uint64_t requests;        /* requests begun while draining */
  bool timed_out;           /* max_ms ran out */
} srv_http_drain_t;

/* Stop gracefully: stop accepting on both ports (MHD_quiesce_daemon: a
 * socket's queue is left to whoever else listens on it), answer every
 * request still received with Connection: close, and stop once no
 * connection is open, or only idle ones are and nothing happened for
 * idle_ms, or after max_ms. Fills *out if not NULL. */
void srv_http_drain(unsigned max_ms, unsigned idle_ms, srv_http_drain_t *out);

#define SRV_HTTP_THREADS_MAX 128 /* threads whose handler time is watched */

/* How long the request that has been inside its handler longest has been
 * there, ns (0: no handler is running). A handler that never returns (a
 * deadlock) shows here while the process still runs. */
uint64_t srv_http_handler_ns(uint64_t now_ns);

/* Value of query parameter `key`, or NULL. */
const char *srv_http_query(srv_req_t *rq, const char *key);
/* Answer 400 and return false if the query string has a parameter not in
 * the NULL-terminated list `allowed` (NULL: no parameter is allowed). */
bool srv_http_query_only(srv_req_t *rq, const char *const *allowed);
/* Parse query parameter `key` as a whole number in [min, max] into *out
 * (left alone when absent); answers 400 and returns false if malformed. */
bool srv_http_query_u64(srv_req_t *rq, const char *key, uint64_t min,
                        uint64_t max, uint64_t *out);
/* Whether the request may change flags (no token set, or a matching
 * bearer token; compared in constant time). */
bool srv_http_authorized(srv_req_t *rq);

/* The call site that response buffers of a route are charged to
 * ("echo.response", ...; "other.response" for an index out of range);
 * SRV_MEM_OUTSIDE (core/mem.h) for the observer's routes
 * (SRV_ROUTE_ADMIN): what the observer allocates to answer is never the
 * watched heap's, so reading it changes nothing it reads. */
const lab_site_t *srv_http_site(srv_route_t route);

/* Send buf[0..len), a block MHD now owns, from where srv_http_site says
 * the route's answers are: detached from the request scope and freed by
 * MHD's free callback. */
void srv_http_send(srv_req_t *rq, unsigned status, const char *ctype,
                   char *buf, size_t len);
/* Send a copy of p[0..len) (MHD copies it; the caller keeps p). */
void srv_http_send_copy(srv_req_t *rq, unsigned status, const char *ctype,
                        const void *p, size_t len);
/* Send a dashboard file (static bytes) with the page's security headers. */
void srv_http_send_asset(srv_req_t *rq, const char *ctype, const void *p,
                         size_t len);
/* Send static text. */
void srv_http_send_static(srv_req_t *rq, unsigned status, const char *ctype,
                          const char *text);
/* Send the document built in j (its buffer is handed to MHD). */
void srv_http_send_json(srv_req_t *rq, unsigned status, srv_json_t *j);
/* Start a JSON document charged to the request's route. */
void srv_http_json_init(srv_req_t *rq, srv_json_t *j);
/* Send {"error": "<message>"} with a 4xx/5xx status. */
void srv_http_error(srv_req_t *rq, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Send {"error": "<message>", "flag": "<name>"}. */
void srv_http_error_flag(srv_req_t *rq, unsigned status, const char *flag,
                         const char *msg);

#endif /* SRV_HTTP_H */

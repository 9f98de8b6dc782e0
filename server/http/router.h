/* router.h - the route table, filled at set-up by the layers that serve
 * endpoints (the observer, the demo app), so the HTTP layer knows none of
 * them. A route's id names it in call-site names ("echo.tree" belongs to
 * the route with id "echo"), in request counters and in metrics. HEAD is
 * allowed wherever GET is. */
#ifndef SRV_ROUTER_H
#define SRV_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define SRV_M_GET 1u
#define SRV_M_HEAD 2u
#define SRV_M_POST 4u
#define SRV_M_PATCH 8u
#define SRV_M_PUT 16u
#define SRV_M_DELETE 32u
#define SRV_M_OTHER 64u

#define SRV_ROUTES_MAX 31 /* routes registered, "other" aside */

/* Route options. */
#define SRV_ROUTE_SHEDDABLE 1u /* a guard may refuse it under load */
#define SRV_ROUTE_ADMIN 2u     /* also served on the admin port */

struct srv_req;
/* Answers one request (sends a response with srv_http_send*). */
typedef void (*srv_route_fn)(struct srv_req *rq);
/* Whether a route also serves a path other than its own (the dashboard's
 * files under "/"). */
typedef bool (*srv_route_owns_fn)(const char *path);

/* One route. */
typedef struct srv_route_def {
  const char *id;           /* "echo": names it in sites and metrics */
  const char *path;         /* "/echo": the exact path it serves */
  unsigned methods;         /* mask of SRV_M_* */
  srv_route_fn handler;     /* what answers */
  unsigned options;         /* SRV_ROUTE_* */
  srv_route_owns_fn owns;   /* more paths it serves, or NULL */
} srv_route_def_t;

/* A route's index; SRV_ROUTE_OTHER when nothing matched. */
typedef int srv_route_t;
#define SRV_ROUTE_OTHER 0 /* no route matched (404); index 0 */
#define SRV_ROUTE_SLOTS (SRV_ROUTES_MAX + 1) /* indexes, "other" included */

/* Register a route (def is copied; its strings must be static); returns
 * its index (>= 1), SRV_E2BIG when the table is full or SRV_EINVAL when
 * the id or path is taken or missing. Before the first fork. */
int srv_router_add(const srv_route_def_t *def);
/* Routes registered, "other" included (indexes 0 .. count-1). */
int srv_router_count(void);
/* Path of a route ("/echo"), or "other". */
const char *srv_route_path(srv_route_t r);
/* Id of a route ("echo"), or "other". */
const char *srv_route_id(srv_route_t r);
/* Its handler, or NULL for "other". */
srv_route_fn srv_route_handler(srv_route_t r);
/* Whether the route has option opt (SRV_ROUTE_*). */
bool srv_route_has(srv_route_t r, unsigned opt);
/* The route whose id is the prefix of a site name before its first dot
 * ("echo.tree" -> the echo route), or SRV_ROUTE_OTHER. */
srv_route_t srv_route_of_site(const char *site_name);
/* The route serving a path: its own, else the first whose owns() says
 * so; SRV_ROUTE_OTHER when none. */
srv_route_t srv_route_match(const char *path);
/* Allowed methods of a route (HEAD added where GET is). */
unsigned srv_route_methods(srv_route_t r);
/* The method mask of a method name ("GET" -> SRV_M_GET; SRV_M_OTHER). */
unsigned srv_route_method(const char *name);
/* The allowed methods as an Allow header value ("GET, HEAD, POST"). */
const char *srv_route_allow(srv_route_t r, char *buf, size_t cap);
/* Forget every route (tests). */
void srv_router_reset(void);

#endif /* SRV_ROUTER_H */

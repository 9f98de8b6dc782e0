/* routes.h - every route, declared once: the router, the request counters,
 * the metrics and the site-to-route map are generated from this list.
 *
 * X(id, path, methods, handler): `id` also names the route in call-site
 * names ("echo.tree" belongs to /echo); `methods` is a mask of SRV_M_*.
 * HEAD is allowed wherever GET is. */
#ifndef SRV_ROUTES_H
#define SRV_ROUTES_H

#define SRV_M_GET 1u
#define SRV_M_HEAD 2u
#define SRV_M_POST 4u
#define SRV_M_PATCH 8u
#define SRV_M_PUT 16u
#define SRV_M_DELETE 32u
#define SRV_M_OTHER 64u

#define SRV_ROUTE_MAP(X)                                                     \
  X(root, "/", SRV_M_GET, srv_app_root)                                      \
  X(healthz, "/healthz", SRV_M_GET, srv_api_healthz)                         \
  X(stats, "/api/stats", SRV_M_GET, srv_api_stats)                           \
  X(history, "/api/history", SRV_M_GET, srv_api_history)                     \
  X(flags, "/api/flags", SRV_M_GET | SRV_M_PATCH | SRV_M_POST, srv_api_flags) \
  X(flags_reset, "/api/flags/reset", SRV_M_POST, srv_api_flags_reset)        \
  X(leaks, "/api/leaks", SRV_M_GET, srv_api_leaks)                           \
  X(events, "/api/events", SRV_M_GET, srv_api_events)                        \
  X(metrics, "/metrics", SRV_M_GET, srv_metrics_handle)                      \
  X(hello, "/hello", SRV_M_GET, srv_app_hello)                               \
  X(echo, "/echo", SRV_M_GET | SRV_M_POST, srv_app_echo)                     \
  X(session, "/session", SRV_M_GET | SRV_M_POST, srv_app_session)            \
  X(blob, "/blob", SRV_M_GET, srv_app_blob)                                  \
  X(report, "/report", SRV_M_GET, srv_app_report)

typedef enum srv_route {
#define SRV__ROUTE_ENUM(id, path, methods, handler) SRV_ROUTE_##id,
  SRV_ROUTE_MAP(SRV__ROUTE_ENUM)
#undef SRV__ROUTE_ENUM
  SRV_ROUTE_OTHER, /* no route matched (404) */
  SRV_ROUTE_COUNT
} srv_route_t;

/* Path of a route ("/echo"), or "other". */
const char *srv_route_path(srv_route_t r);
/* Id of a route ("echo"), or "other". */
const char *srv_route_id(srv_route_t r);
/* The route whose id is the prefix of a site name before its first dot
 * ("echo.tree" -> SRV_ROUTE_echo), or SRV_ROUTE_OTHER. */
srv_route_t srv_route_of_site(const char *site_name);
/* The route serving an exact path (the dashboard's files belong to the
 * root route), or SRV_ROUTE_OTHER. */
srv_route_t srv_route_match(const char *path);
/* Allowed methods of a route (HEAD added where GET is). */
unsigned srv_route_methods(srv_route_t r);
/* Whether the route is part of the demo app (the endpoints that carry the
 * faults and that the budget guard may shed). */
int srv_route_is_app(srv_route_t r);

#endif /* SRV_ROUTES_H */

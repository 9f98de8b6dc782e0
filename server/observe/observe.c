/* observe.c - the observer's set-up: its blocks, routes and hook. */
#include "observe/observe.h"

#include <dash/assets.h>

#include "core/err.h"
#include "http/conns.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/hist.h"
#include "observe/jsonapi.h"
#include "observe/metrics.h"
#include "observe/profile.h"
#include "observe/stacks.h"
#include "observe/workers.h"

static bool srv__is_asset(const char *path) { return dash_asset_find(path) != NULL; }

void srv_observe_page(srv_req_t *rq) {
  const dash_asset_t *a = dash_asset_find(rq->url);
  if (!a) {
    srv_http_error(rq, 404, "no such path: %.200s", rq->url);
    return;
  }
  srv_http_send_asset(rq, a->type, a->data, a->len);
}

/* Every answered request counts for the worker that answered it. */
static void srv__count_request(srv_req_t *rq, uint64_t latency_ns) {
  (void)rq;
  (void)latency_ns;
  srv_workers_count_request();
}

/* Every route of the observer is served on the admin port too. */
#define A SRV_ROUTE_ADMIN
static const srv_route_def_t srv__routes[] = {
    {"root", "/", SRV_M_GET, srv_observe_page, A, srv__is_asset},
    {"healthz", "/healthz", SRV_M_GET, srv_jsonapi_healthz, A, NULL},
    {"stats", "/api/stats", SRV_M_GET, srv_jsonapi_stats, A, NULL},
    {"history", "/api/history", SRV_M_GET, srv_jsonapi_history, A, NULL},
    {"flags", "/api/flags", SRV_M_GET | SRV_M_PATCH | SRV_M_POST,
     srv_jsonapi_flags, A, NULL},
    {"flags_reset", "/api/flags/reset", SRV_M_POST, srv_jsonapi_flags_reset, A,
     NULL},
    {"recycle", "/api/recycle", SRV_M_POST, srv_jsonapi_recycle, A, NULL},
    {"leaks", "/api/leaks", SRV_M_GET, srv_jsonapi_leaks, A, NULL},
    {"stacks", "/api/stacks", SRV_M_GET, srv_stacks_handle, A, NULL},
    {"pprof_heap", "/debug/pprof/heap", SRV_M_GET, srv_profile_heap, A, NULL},
    {"pprof_allocs", "/debug/pprof/allocs", SRV_M_GET, srv_profile_allocs, A, NULL},
    {"events", "/api/events", SRV_M_GET, srv_jsonapi_events, A, NULL},
    {"metrics", "/metrics", SRV_M_GET, srv_metrics_handle, A, NULL},
};
#undef A

/* Refused and closed connections, as one event a second at most. */
static void srv__conns_notice(const char *text) {
  srv_events_log(SRV_EVENT_conns, "%s", text);
}

int srv_observe_setup(uint32_t hist_len, uint32_t sample_ms) {
  srv_conns_set_notice(srv__conns_notice);
  int err = srv_workers_setup();
  if (!err) err = srv_flags_setup();
  if (!err) err = srv_events_setup();
  if (!err) err = srv_hist_setup(hist_len, sample_ms);
  for (size_t i = 0; !err && i < sizeof srv__routes / sizeof srv__routes[0]; i++) {
    int r = srv_router_add(&srv__routes[i]);
    if (r < 0) err = r;
  }
  if (!err) err = srv_http_add_hooks(&(srv_http_hooks_t){.done = srv__count_request});
  return err;
}

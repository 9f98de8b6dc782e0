/* observe.c - the observer's set-up: its blocks, routes and hook. */
#include "observe/observe.h"

#include <dash/assets.h>

#include "core/err.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/hist.h"
#include "observe/jsonapi.h"
#include "observe/metrics.h"
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

static const srv_route_def_t srv__routes[] = {
    {"root", "/", SRV_M_GET, srv_observe_page, 0, srv__is_asset},
    {"healthz", "/healthz", SRV_M_GET, srv_jsonapi_healthz, 0, NULL},
    {"stats", "/api/stats", SRV_M_GET, srv_jsonapi_stats, 0, NULL},
    {"history", "/api/history", SRV_M_GET, srv_jsonapi_history, 0, NULL},
    {"flags", "/api/flags", SRV_M_GET | SRV_M_PATCH | SRV_M_POST,
     srv_jsonapi_flags, 0, NULL},
    {"flags_reset", "/api/flags/reset", SRV_M_POST, srv_jsonapi_flags_reset, 0,
     NULL},
    {"leaks", "/api/leaks", SRV_M_GET, srv_jsonapi_leaks, 0, NULL},
    {"events", "/api/events", SRV_M_GET, srv_jsonapi_events, 0, NULL},
    {"metrics", "/metrics", SRV_M_GET, srv_metrics_handle, 0, NULL},
};

int srv_observe_setup(uint32_t hist_len, uint32_t sample_ms) {
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

/* api.h - the JSON API: /healthz, /api/stats, /api/history, /api/flags,
 * /api/flags/reset, /api/leaks, /api/events. */
#ifndef SRV_API_H
#define SRV_API_H

#include "http.h"

/* GET /healthz: {"status":"ok"}. */
void srv_api_healthz(srv_req_t *rq);
/* GET /api/stats: one snapshot. */
void srv_api_stats(srv_req_t *rq);
/* GET /api/history?since=<unix ms>&limit=N: samples newer than since. */
void srv_api_history(srv_req_t *rq);
/* GET, PATCH, POST /api/flags: list or change flags, all or nothing. */
void srv_api_flags(srv_req_t *rq);
/* POST /api/flags/reset: every flag back to its default. */
void srv_api_flags_reset(srv_req_t *rq);
/* GET /api/leaks?top=N: live heap by call site with growth rates. */
void srv_api_leaks(srv_req_t *rq);
/* GET /api/events?since=<seq>&limit=N: events after since, newest last. */
void srv_api_events(srv_req_t *rq);

#endif /* SRV_API_H */

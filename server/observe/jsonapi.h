/* jsonapi.h - the observer's JSON API: /healthz, /api/stats,
 * /api/history, /api/flags, /api/flags/reset, /api/leaks, /api/events.
 * Registered as routes by observe.h. */
#ifndef SRV_JSONAPI_H
#define SRV_JSONAPI_H

#include <stdint.h>

#include "http/http.h"

/* The memory budget /api/leaks measures each site's growth against
 * (bytes, 0: none); a guard provides it. */
typedef uint64_t (*srv_jsonapi_budget_fn)(void);
/* Set the budget's provider (NULL: no budget). */
void srv_jsonapi_set_budget(srv_jsonapi_budget_fn fn);

/* GET /healthz: {"status":"ok"}. */
void srv_jsonapi_healthz(srv_req_t *rq);
/* GET /api/stats: one snapshot. */
void srv_jsonapi_stats(srv_req_t *rq);
/* GET /api/history?since=<unix ms>&limit=N: samples newer than since. */
void srv_jsonapi_history(srv_req_t *rq);
/* GET, PATCH, POST /api/flags: list or change flags, all or nothing. */
void srv_jsonapi_flags(srv_req_t *rq);
/* POST /api/flags/reset: every flag back to its default. */
void srv_jsonapi_flags_reset(srv_req_t *rq);
/* POST /api/recycle: replace the serving worker now, gracefully (as
 * SIGHUP to the supervisor does); 202, or 409 with --single-process. */
void srv_jsonapi_recycle(srv_req_t *rq);
/* GET /api/leaks?top=N: live heap by call site with growth rates. */
void srv_jsonapi_leaks(srv_req_t *rq);
/* GET /api/events?since=<seq>&limit=N: events after since, newest last. */
void srv_jsonapi_events(srv_req_t *rq);

#endif /* SRV_JSONAPI_H */

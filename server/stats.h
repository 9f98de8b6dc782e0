/* stats.h - request accounting and the /api/stats snapshot. */
#ifndef SRV_STATS_H
#define SRV_STATS_H

#include <stdint.h>

#include "json.h"
#include "routes.h"

/* Count one answered request: its route, status and latency. */
void srv_stats_request_done(srv_route_t route, unsigned status,
                            uint64_t latency_ns);
/* Requests this worker process answered. */
uint64_t srv_stats_worker_requests(void);
/* Write the /api/stats document (DESIGN.md's fields, and more). */
void srv_stats_json(srv_json_t *j);

#endif /* SRV_STATS_H */

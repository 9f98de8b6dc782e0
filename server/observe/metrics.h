/* metrics.h - GET /metrics in the Prometheus text format 0.0.4: standard
 * process_* metrics, heap gauges, per-site gauges, heap errors by kind,
 * requests by route and status, request latency histogram, lifetime
 * counters and flag values. */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include "core/buf.h"
#include "http/http.h"

/* Write every metric into b. */
void srv_metrics_write(srv_buf_t *b);
/* GET /metrics. */
void srv_metrics_handle(srv_req_t *rq);

#endif /* SRV_METRICS_H */

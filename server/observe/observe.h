/* observe.h - the observer as a whole: what watches a heap and shows it
 * (the shared region's blocks for flags, events, history and workers; the
 * JSON API, /metrics and the dashboard's page), knowing nothing of the
 * demo app. The process layer sets it up before the first fork. */
#ifndef SRV_OBSERVE_H
#define SRV_OBSERVE_H

#include <stdint.h>

#include "http/http.h"

/* Make the observer's blocks in the region (history of hist_len samples
 * every sample_ms), register its routes (the page, /healthz, the JSON API, /metrics)
 * and its request hook; SRV_ENOMEM or SRV_E2BIG. */
int srv_observe_setup(uint32_t hist_len, uint32_t sample_ms);
/* GET / and the dashboard's files. */
void srv_observe_page(srv_req_t *rq);

#endif /* SRV_OBSERVE_H */

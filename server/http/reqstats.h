/* reqstats.h - what the HTTP layer counts of every answered request, in
 * the shared region: requests by route and status, and a latency
 * histogram by route. */
#ifndef SRV_REQSTATS_H
#define SRV_REQSTATS_H

#include <stdint.h>

#include "core/json.h"
#include "http/router.h"

/* Statuses counted one by one; others count as "other". */
#define SRV_STATUS_MAP(X)                                                    \
  X(200) X(201) X(202) X(400) X(401) X(404) X(405) X(409) X(413) X(500)      \
  X(503)

enum {
#define SRV__STATUS_ENUM(code) SRV_STATUS_##code,
  SRV_STATUS_MAP(SRV__STATUS_ENUM)
#undef SRV__STATUS_ENUM
  SRV_STATUS_OTHER,
  SRV_STATUS_COUNT
};

/* Upper bounds of the request-latency histogram: X(label, nanoseconds). */
#define SRV_LATENCY_BUCKETS(X)                                               \
  X("0.0001", 100000) X("0.00025", 250000) X("0.0005", 500000)               \
  X("0.001", 1000000) X("0.0025", 2500000) X("0.005", 5000000)               \
  X("0.01", 10000000) X("0.025", 25000000) X("0.05", 50000000)               \
  X("0.1", 100000000) X("0.25", 250000000) X("0.5", 500000000)               \
  X("1", 1000000000) X("2.5", 2500000000)

enum {
#define SRV__LAT_COUNT(label, ns) +1
  SRV_LATENCY_NBUCKETS = 0 SRV_LATENCY_BUCKETS(SRV__LAT_COUNT)
#undef SRV__LAT_COUNT
};

/* Make the block in the region and register the requests counter;
 * SRV_ENOMEM. */
int srv_reqstats_setup(void);
/* Count one answered request: its route, status and latency. */
void srv_reqstats_done(srv_route_t route, unsigned status, uint64_t latency_ns);
/* Requests answered by every worker so far. */
uint64_t srv_reqstats_total(void);
/* Answers of every route by status index, into out. */
void srv_reqstats_totals(uint64_t out[SRV_STATUS_COUNT]);
/* Write counts by status index as JSON object `key` ({"200": n, ...,
 * "other": n}, the zeros left out). */
void srv_reqstats_status_json(srv_json_t *j, const char *key,
                              const uint64_t counts[SRV_STATUS_COUNT]);
/* Requests of route r answered with the status at index s. */
uint64_t srv_reqstats_count(srv_route_t r, int s);
/* Requests of route r in latency bucket k (k == SRV_LATENCY_NBUCKETS:
 * beyond the last bound). */
uint64_t srv_reqstats_latency(srv_route_t r, int k);
/* Their summed latency, ns. */
uint64_t srv_reqstats_latency_sum_ns(srv_route_t r);
/* The label ("0.0001") of latency bucket k. */
const char *srv_reqstats_bucket_label(int k);
/* Index of an HTTP status in the per-status counters. */
int srv_reqstats_status_index(unsigned status);
/* The status code counted at an index (0 for "other"). */
unsigned srv_reqstats_status_code(int index);

#endif /* SRV_REQSTATS_H */

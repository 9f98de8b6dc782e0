/* profile.h - the heap's stacks as pprof profiles: GET /debug/pprof/heap
 * and /debug/pprof/allocs, as Go's net/http/pprof serves them, for
 * `go tool pprof`, Pyroscope or Parca. */
#ifndef SRV_PROFILE_H
#define SRV_PROFILE_H

#include "http/http.h"

/* Longest ?seconds= a difference profile may wait. */
#define SRV_PROFILE_SECONDS_MAX 60

/* GET /debug/pprof/heap[?seconds=N][&debug=1]: every stack's counts as a
 * gzipped profile.proto (inuse_space shown by default); with seconds, what
 * changed over the next N seconds; with debug=1, Go's legacy text. */
void srv_profile_heap(srv_req_t *rq);
/* GET /debug/pprof/allocs: the same profile, alloc_space shown first,
 * as Go serves it. */
void srv_profile_allocs(srv_req_t *rq);

#endif /* SRV_PROFILE_H */

/* recycle.h - guard.recycle_rss_bytes and guard.recycle_requests: when a
 * worker is due to be replaced. The supervisor asks every tick and does
 * the handover; this module decides. Limits get a per-worker jitter drawn
 * at fork, so a fleet under the same load does not recycle in lockstep:
 * the request limit moves by up to 10 % either way, the RSS limit only
 * down (it is a ceiling). The RSS ceiling is also anticipated: a worker is
 * due when its RSS, growing at its recent rate, would pass the ceiling
 * before a handover could finish. */
#ifndef SRV_RECYCLE_H
#define SRV_RECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the guard keeps of one worker (in the supervisor). */
typedef struct srv_recycle {
  double req_jitter;        /* its request limit is the flag times this */
  double rss_jitter;        /* its RSS limit is the flag times this */
  uint64_t rss;             /* RSS at the last look, bytes */
  uint64_t rss_at;          /* when (ms), 0: not yet */
  double rss_rate;          /* RSS growth, bytes per ms (smoothed) */
} srv_recycle_t;

/* Register the two flags; SRV_E2BIG or SRV_EINVAL. */
int srv_recycle_register(void);
/* Register the recycles counter and the request hook that tells the
 * supervisor (SIGUSR1) the moment a worker reaches its request limit;
 * SRV_ENOMEM. */
int srv_recycle_setup(void);
/* A new worker's state, its jitter drawn from u1 and u2 in [0, 1). */
void srv_recycle_init(srv_recycle_t *r, double u1, double u2);
/* The request count at which the worker is due (0: never), with the
 * guard.recycle_requests value given. */
uint64_t srv_recycle_request_limit(const srv_recycle_t *r, uint64_t flag);
/* Whether a worker that answered `requests` and is at `rss` bytes now
 * (now_ms) is due, a handover taking about lead_ms; says why in why. The
 * flag values are given (0: off). Updates r's RSS rate. */
bool srv_recycle_due(srv_recycle_t *r, uint64_t requests_flag,
                     uint64_t rss_flag, uint64_t requests, uint64_t rss,
                     uint64_t now_ms, double lead_ms, char *why, size_t cap);
/* guard.recycle_requests now. */
uint64_t srv_recycle_requests_flag(void);
/* guard.recycle_rss_bytes now. */
uint64_t srv_recycle_rss_flag(void);
/* Count one recycle done. */
void srv_recycle_count(void);
/* Recycles so far. */
uint64_t srv_recycle_total(void);

#endif /* SRV_RECYCLE_H */

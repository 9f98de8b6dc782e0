/* recycle.c - when a worker is due to be replaced. */
#include "guards/recycle.h"

#include <signal.h>
#include <stdio.h>

#include "core/counters.h"
#include "core/err.h"
#include "http/http.h"
#include "observe/flags.h"
#include "observe/workers.h"

static const srv_flag_def_t srv__flags[] = {
    {"guard.recycle_rss_bytes", SRV_FLAG_BYTES, 0,
     "replace the worker before its RSS passes this many bytes, less up to "
     "10 % at random per worker (0 = off): the next worker starts on the "
     "same socket, the old one answers what it still has with Connection: "
     "close and exits, and the OS takes back all it leaked; no effect with "
     "--single-process",
     NULL},
    {"guard.recycle_requests", SRV_FLAG_REQUESTS, 0,
     "replace the worker after it has answered this many requests, give or "
     "take 10 % at random per worker so a fleet does not recycle in "
     "lockstep (0 = off); no effect with --single-process",
     NULL},
};

static srv_flag_t srv__first = -1; /* rss, then requests */
static srv_counter_t *srv__recycles;

int srv_recycle_register(void) {
  return srv_flags_register(srv__flags, 2, &srv__first);
}

uint64_t srv_recycle_rss_flag(void) {
  return srv__first >= 0 ? srv_flags_u64(srv__first) : 0;
}

uint64_t srv_recycle_requests_flag(void) {
  return srv__first >= 0 ? srv_flags_u64(srv__first + 1) : 0;
}

void srv_recycle_count(void) { srv_counter_add(srv__recycles, 1); }
uint64_t srv_recycle_total(void) { return srv_counter_get(srv__recycles); }

void srv_recycle_init(srv_recycle_t *r, double u1, double u2) {
  *r = (srv_recycle_t){0};
  r->req_jitter = 0.9 + 0.2 * u1;
  r->rss_jitter = 0.9 + 0.1 * u2;
}

uint64_t srv_recycle_request_limit(const srv_recycle_t *r, uint64_t flag) {
  if (!flag) return 0;
  uint64_t limit = (uint64_t)((double)flag * r->req_jitter + 0.5);
  return limit ? limit : 1;
}

bool srv_recycle_due(srv_recycle_t *r, uint64_t requests_flag,
                     uint64_t rss_flag, uint64_t requests, uint64_t rss,
                     uint64_t now_ms, double lead_ms, char *why, size_t cap) {
  uint64_t limit = srv_recycle_request_limit(r, requests_flag);
  if (limit && requests >= limit) {
    snprintf(why, cap, "%llu requests answered, limit %llu "
                       "(guard.recycle_requests %llu, jittered)",
             (unsigned long long)requests, (unsigned long long)limit,
             (unsigned long long)requests_flag);
    return true;
  }
  if (!rss_flag) return false;
  uint64_t ceiling = (uint64_t)((double)rss_flag * r->rss_jitter);
  if (r->rss_at && now_ms > r->rss_at) {
    double rate = ((double)rss - (double)r->rss) / (double)(now_ms - r->rss_at);
    if (rate < 0) rate = 0;
    r->rss_rate = 0.5 * r->rss_rate + 0.5 * rate;
  }
  r->rss = rss;
  r->rss_at = now_ms;
  double soon = (double)rss + r->rss_rate * lead_ms;
  if (soon <= (double)ceiling) return false;
  snprintf(why, cap, "RSS %.1f MiB %s %.1f MiB%s (guard.recycle_rss_bytes "
                     "%.0f MiB, jittered)",
           (double)rss / 1048576.0, rss > ceiling ? "over" : "would pass",
           (double)ceiling / 1048576.0, rss > ceiling ? "" : " in a handover",
           (double)rss_flag / 1048576.0);
  return true;
}

/* The done hook: at its limit, the worker tells the supervisor at once
 * rather than wait for its next look. */
static void srv__done(srv_req_t *rq, uint64_t latency_ns) {
  (void)rq;
  (void)latency_ns;
  uint64_t g = srv_workers_self.generation;
  uint64_t n = atomic_load_explicit(srv_workers_requests(g), memory_order_relaxed);
  if (n == atomic_load_explicit(srv_workers_limit(g), memory_order_relaxed))
    kill((pid_t)srv_workers->supervisor_pid, SIGUSR1);
}

int srv_recycle_setup(void) {
  srv__recycles = srv_counters_add("recycles", "workers replaced by the supervisor");
  if (!srv__recycles) return SRV_ENOMEM;
  return srv_http_add_hooks(&(srv_http_hooks_t){.done = srv__done});
}

/* stats.c - request accounting and the /api/stats snapshot. */
#include "stats.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "flags.h"
#include "hist.h"
#include "proc.h"
#include "shm.h"

static const uint64_t srv__latency_ns[SRV_LATENCY_NBUCKETS] = {
#define SRV__LAT_NS(label, ns) (uint64_t)(ns),
    SRV_LATENCY_BUCKETS(SRV__LAT_NS)
#undef SRV__LAT_NS
};

void srv_stats_request_done(srv_route_t route, unsigned status,
                            uint64_t latency_ns) {
  if ((unsigned)route >= SRV_ROUTE_COUNT) route = SRV_ROUTE_OTHER;
  int b = 0;
  while (b < SRV_LATENCY_NBUCKETS && latency_ns > srv__latency_ns[b]) b++;
  atomic_fetch_add_explicit(&srv_shm->latency[route][b], 1,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&srv_shm->latency_sum_ns[route], latency_ns,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(
      &srv_shm->by_route_status[route][srv_shm_status_index(status)], 1,
      memory_order_relaxed);
  uint64_t g = srv_shm_self.generation;
  uint64_t n = atomic_fetch_add_explicit(srv_shm_worker_requests(g), 1,
                                         memory_order_relaxed) + 1;
  /* guard.recycle_requests: tell the supervisor the moment the count is
   * reached rather than wait for its next look. */
  if (n == atomic_load_explicit(srv_shm_worker_limit(g),
                                memory_order_relaxed))
    kill((pid_t)srv_shm->supervisor_pid, SIGUSR1);
  SRV_COUNT(requests, 1);
}

uint64_t srv_stats_worker_requests(void) {
  return atomic_load_explicit(srv_shm_worker_requests(srv_shm_self.generation),
                              memory_order_relaxed);
}

void srv_stats_json(srv_json_t *j) {
  uint64_t now = srv_proc_now_ms();
  lab_stats_t st;
  lab_stats(&st);
  uint64_t rss = 0, vm = 0;
  srv_proc_mem(&rss, &vm);

  srv_json_obj(j, NULL);
  srv_json_u64(j, "uptime_s", (now - srv_shm->started_at_ms) / 1000);
  srv_json_i64(j, "pid", (int64_t)srv_shm->supervisor_pid);
  srv_json_u64(j, "t_ms", now);

  /* The worker answering: during a handover the old one still answers
   * its open connections, about itself. */
  srv_json_obj(j, "worker");
  srv_json_i64(j, "pid", (int64_t)getpid());
  srv_json_u64(j, "generation", srv_shm_self.generation);
  srv_json_u64(j, "started_at_ms", srv_shm_self.started_ms);
  srv_json_u64(j, "requests", srv_stats_worker_requests());
  srv_json_bool(j, "serving", atomic_load(&srv_shm->worker_pid) ==
                                  (uint64_t)getpid());
  /* A handover under way: the next worker is starting. */
  srv_json_bool(j, "successor_starting",
                atomic_load(&srv_shm->successor_pid) != 0);
  srv_json_end(j);

  srv_json_obj(j, "process");
  srv_json_u64(j, "rss_bytes", rss);
  srv_json_u64(j, "vm_bytes", vm);
  srv_json_f64(j, "cpu_seconds", srv_proc_cpu_seconds());
  srv_json_end(j);

  srv_json_obj(j, "heap");
  srv_json_str(j, "backend", lab_backend_name());
#define SRV__HEAP_JSON(name, kind, metric, help) srv_json_u64(j, #name, st.name);
  LAB_STAT_FIELDS(SRV__HEAP_JSON)
#undef SRV__HEAP_JSON
  srv_json_end(j);

  srv_json_obj(j, "errors");
#define SRV__ERR_JSON(name, desc) srv_json_u64(j, #name, st.errors[LAB_FAULT_##name]);
  LAB_FAULT_MAP(SRV__ERR_JSON)
#undef SRV__ERR_JSON
  srv_json_end(j);

  srv_json_obj(j, "requests");
  srv_json_u64(j, "total", SRV_COUNTER(requests));
  srv_json_f64(j, "rate_per_s", srv_hist_rate());
  srv_json_obj(j, "by_status");
  for (int s = 0; s < SRV_STATUS_COUNT; s++) {
    uint64_t n = 0;
    for (int r = 0; r < SRV_ROUTE_COUNT; r++)
      n += atomic_load_explicit(&srv_shm->by_route_status[r][s],
                                memory_order_relaxed);
    if (!n) continue;
    char code[16];
    unsigned c = srv_shm_status_code(s);
    if (c) snprintf(code, sizeof code, "%u", c);
    else snprintf(code, sizeof code, "other");
    srv_json_u64(j, code, n);
  }
  srv_json_end(j);
  srv_json_end(j);

  srv_json_obj(j, "guards");
  srv_json_u64(j, "reclaimed_bytes", SRV_COUNTER(reclaimed_bytes));
  srv_json_u64(j, "reclaimed_blocks", SRV_COUNTER(reclaimed_blocks));
  srv_json_u64(j, "shed_requests", SRV_COUNTER(shed_requests));
  srv_json_u64(j, "recycles", SRV_COUNTER(recycles));
  srv_json_end(j);

  srv_json_obj(j, "counters");
#define SRV__CTR_JSON(name, help) srv_json_u64(j, #name, SRV_COUNTER(name));
  SRV_COUNTER_FIELDS(SRV__CTR_JSON)
#undef SRV__CTR_JSON
  srv_json_end(j);

  srv_json_obj(j, "flags");
  for (int f = 0; f < SRV_FLAG_COUNT; f++)
    srv_flags_value_json(j, srv_flags_name((srv_flag_t)f), (srv_flag_t)f);
  srv_json_end(j);

  srv_json_end(j);
}

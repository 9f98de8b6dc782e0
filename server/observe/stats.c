/* stats.c - the /api/stats snapshot. */
#include "observe/stats.h"

#include <unistd.h>

#include <lab/alloc.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/err.h"
#include "core/procfs.h"
#include "core/shm.h"
#include "http/reqstats.h"
#include "observe/flags.h"
#include "observe/hist.h"
#include "observe/workers.h"

static struct {
  const char *key;
  srv_stats_section_fn fn;
} srv__sections[SRV_STATS_SECTIONS_MAX];
static int srv__nsections;

int srv_stats_add_section(const char *key, srv_stats_section_fn fn) {
  if (srv__nsections == SRV_STATS_SECTIONS_MAX) return SRV_E2BIG;
  srv__sections[srv__nsections].key = key;
  srv__sections[srv__nsections++].fn = fn;
  return SRV_OK;
}

void srv_stats_json(srv_json_t *j) {
  uint64_t now = srv_clock_now_ms();
  lab_stats_t st;
  lab_stats(&st);
  uint64_t rss = 0, vm = 0;
  srv_procfs_mem(&rss, &vm);

  srv_json_obj(j, NULL);
  srv_json_u64(j, "uptime_s", (now - srv_shm_started_ms()) / 1000);
  srv_json_i64(j, "pid", (int64_t)srv_workers->supervisor_pid);
  srv_json_u64(j, "t_ms", now);

  /* The worker answering: during a handover the old one still answers
   * its open connections, about itself. */
  srv_json_obj(j, "worker");
  srv_json_i64(j, "pid", (int64_t)getpid());
  srv_json_u64(j, "generation", srv_workers_self.generation);
  srv_json_u64(j, "started_at_ms", srv_workers_self.started_ms);
  srv_json_u64(j, "requests", srv_workers_my_requests());
  srv_json_bool(j, "serving", srv_workers_serving());
  /* A handover under way: the next worker is starting. */
  srv_json_bool(j, "successor_starting",
                atomic_load(&srv_workers->successor_pid) != 0);
  srv_json_end(j);

  srv_json_obj(j, "process");
  srv_json_u64(j, "rss_bytes", rss);
  srv_json_u64(j, "vm_bytes", vm);
  srv_json_f64(j, "cpu_seconds", srv_procfs_cpu_seconds());
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
  srv_json_u64(j, "total", srv_reqstats_total());
  srv_json_f64(j, "rate_per_s", srv_hist_rate());
  uint64_t by_status[SRV_STATUS_COUNT];
  srv_reqstats_totals(by_status);
  srv_reqstats_status_json(j, "by_status", by_status);
  srv_json_end(j);

  srv_json_obj(j, "counters");
  for (size_t i = 0; i < srv_counters_count(); i++)
    srv_json_u64(j, srv_counters_name(i), srv_counters_value(i));
  srv_json_end(j);

  srv_json_obj(j, "flags");
  for (int f = 0; f < srv_flags_count(); f++)
    srv_flags_value_json(j, srv_flags_name(f), f);
  srv_json_end(j);

  for (int i = 0; i < srv__nsections; i++)
    srv__sections[i].fn(j, srv__sections[i].key);

  srv_json_end(j);
}

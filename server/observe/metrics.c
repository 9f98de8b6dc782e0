/* metrics.c - the Prometheus exposition. */
#include "observe/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/mem.h"
#include "core/procfs.h"
#include "core/shm.h"
#include "http/reqstats.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/hist.h"
#include "observe/sites.h"
#include "observe/workers.h"

#ifndef LEAKLAB_VERSION
#define LEAKLAB_VERSION "0.0.0"
#endif

static void srv__family(srv_buf_t *b, const char *name, const char *type,
                        const char *help) {
  srv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void srv__u64(srv_buf_t *b, const char *name, const char *type,
                     const char *help, uint64_t v) {
  srv__family(b, name, type, help);
  srv_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void srv__f64(srv_buf_t *b, const char *name, const char *type,
                     const char *help, double v) {
  srv__family(b, name, type, help);
  srv_buf_printf(b, "%s %.17g\n", name, v);
}

/* name{label="value"} */
static void srv__label1(srv_buf_t *b, const char *name, const char *label,
                        const char *value) {
  srv_buf_printf(b, "%s{%s=\"", name, label);
  srv_buf_prom_label(b, value);
  srv_buf_puts(b, "\"}");
}

/* A metric's full name: counters end in _total. */
#define SRV__SUFFIX_gauge ""
#define SRV__SUFFIX_counter "_total"
#define SRV__METRIC_NAME(prefix, kind, metric) prefix #metric SRV__SUFFIX_##kind

/* Per-site figures merged by site name. */
static void srv__sites(srv_buf_t *b) {
  size_t m;
  srv_site_row_t *ms = srv_sites_merge(false, &m);
  if (!ms) {
    b->failed = true;
    return;
  }
#define SRV__MSITE_ROUTE(k)                                                  \
  (ms[k].route == SRV_ROUTE_OTHER ? "none" : srv_route_path(ms[k].route))
#define SRV__MSITE_OUT(field, kind, metric, help)                            \
  srv__family(b, SRV__METRIC_NAME("leaklab_site_", kind, metric), #kind,     \
              "Per call site: " help ".");                                   \
  for (size_t k = 0; k < m; k++) {                                           \
    srv_buf_puts(b, SRV__METRIC_NAME("leaklab_site_", kind, metric)          \
                    "{site=\"");                                             \
    srv_buf_prom_label(b, ms[k].name);                                       \
    srv_buf_puts(b, "\",route=\"");                                          \
    srv_buf_prom_label(b, SRV__MSITE_ROUTE(k));                               \
    srv_buf_printf(b, "\"} %" PRIu64 "\n", ms[k].field);                    \
  }
  LAB_SITE_STAT_FIELDS(SRV__MSITE_OUT)
#undef SRV__MSITE_OUT
  srv__family(b, "leaklab_site_errors_total", "counter",
              "Heap errors charged to a call site, by kind.");
  for (size_t k = 0; k < m; k++)
    for (int e = 0; e < LAB_FAULT_COUNT; e++) {
      if (!ms[k].errors[e]) continue;
      srv_buf_puts(b, "leaklab_site_errors_total{site=\"");
      srv_buf_prom_label(b, ms[k].name);
      srv_buf_printf(b, "\",kind=\"%s\"} %" PRIu64 "\n",
                     lab_fault_name((lab_fault_t)e), ms[k].errors[e]);
    }
#undef SRV__MSITE_ROUTE
  srv_mem_free(ms, SRV_MEM_OUTSIDE);
}

static void srv__requests(srv_buf_t *b) {
  srv__family(b, "leaklab_http_requests_total", "counter",
              "HTTP requests answered, by route and status.");
  for (int r = 0; r < srv_router_count(); r++)
    for (int s = 0; s < SRV_STATUS_COUNT; s++) {
      uint64_t n = srv_reqstats_count(r, s);
      if (!n) continue;
      unsigned code = srv_reqstats_status_code(s);
      srv_buf_puts(b, "leaklab_http_requests_total{route=\"");
      srv_buf_prom_label(b, srv_route_path(r));
      if (code) srv_buf_printf(b, "\",status=\"%u\"} %" PRIu64 "\n", code, n);
      else srv_buf_printf(b, "\",status=\"other\"} %" PRIu64 "\n", n);
    }

  srv__family(b, "leaklab_http_request_duration_seconds", "histogram",
              "Time from a request's headers to its completion, by route.");
  for (int r = 0; r < srv_router_count(); r++) {
    uint64_t counts[SRV_LATENCY_NBUCKETS + 1], total = 0;
    for (int k = 0; k <= SRV_LATENCY_NBUCKETS; k++) {
      counts[k] = srv_reqstats_latency(r, k);
      total += counts[k];
    }
    if (!total) continue;
    const char *route = srv_route_path(r);
    uint64_t cum = 0;
    for (int k = 0; k <= SRV_LATENCY_NBUCKETS; k++) {
      cum += counts[k];
      srv_buf_puts(b, "leaklab_http_request_duration_seconds_bucket{route=\"");
      srv_buf_prom_label(b, route);
      srv_buf_printf(b, "\",le=\"%s\"} %" PRIu64 "\n",
                     srv_reqstats_bucket_label(k), cum);
    }
    double sum = (double)srv_reqstats_latency_sum_ns(r) / 1e9;
    srv__label1(b, "leaklab_http_request_duration_seconds_sum", "route", route);
    srv_buf_printf(b, " %.9f\n", sum);
    srv__label1(b, "leaklab_http_request_duration_seconds_count", "route", route);
    srv_buf_printf(b, " %" PRIu64 "\n", cum);
  }
}

void srv_metrics_write(srv_buf_t *b) {
  srv_procfs_info_t pi;
  srv_procfs_info(&pi);
  srv__u64(b, "process_resident_memory_bytes", "gauge",
           "Resident memory size in bytes.", pi.rss_bytes);
  srv__u64(b, "process_virtual_memory_bytes", "gauge",
           "Virtual memory size in bytes.", pi.vm_bytes);
  srv__f64(b, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.", pi.cpu_seconds);
  srv__f64(b, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.",
           pi.start_time_s);
  srv__u64(b, "process_open_fds", "gauge", "Number of open file descriptors.",
           pi.open_fds);
  srv__u64(b, "process_max_fds", "gauge",
           "Maximum number of open file descriptors.", pi.max_fds);

  srv__family(b, "leaklab_build_info", "gauge",
              "Version of leaklab and the heap backend serving requests.");
  srv_buf_printf(b, "leaklab_build_info{version=\"%s\",backend=\"%s\"} 1\n",
                 LEAKLAB_VERSION, lab_backend_name());
  srv__u64(b, "leaklab_uptime_seconds", "gauge",
           "Seconds since the server started.",
           (srv_clock_now_ms() - srv_shm_started_ms()) / 1000);
  srv__u64(b, "leaklab_worker_generation", "gauge",
           "Generation of the worker answering (1 for the first).",
           srv_workers_self.generation);
  srv__u64(b, "leaklab_worker_requests_total", "counter",
           "Requests the worker answering has answered.",
           srv_workers_my_requests());

  lab_stats_t st;
  lab_stats(&st);
#define SRV__HEAP_METRIC(name, kind, metric, help)                           \
  srv__u64(b, SRV__METRIC_NAME("leaklab_heap_", kind, metric), #kind,        \
           "Heap: " help ".", st.name);
  LAB_STAT_FIELDS(SRV__HEAP_METRIC)
#undef SRV__HEAP_METRIC
  srv__family(b, "leaklab_heap_errors_total", "counter",
              "Bad operations the heap caught, by kind.");
  for (int k = 0; k < LAB_FAULT_COUNT; k++)
    srv_buf_printf(b, "leaklab_heap_errors_total{kind=\"%s\"} %" PRIu64 "\n",
                   lab_fault_name((lab_fault_t)k), st.errors[k]);

  srv__sites(b);
  srv__requests(b);

  for (size_t i = 0; i < srv_counters_count(); i++) {
    char name[96], help[320];
    snprintf(name, sizeof name, "leaklab_%s_total", srv_counters_name(i));
    snprintf(help, sizeof help, "Lifetime: %s.", srv_counters_help(i));
    srv__u64(b, name, "counter", help, srv_counters_value(i));
  }
  srv__u64(b, "leaklab_events_total", "counter",
           "Events recorded: heap errors and lifecycle events.",
           srv_events_last());
  srv__u64(b, "leaklab_history_samples", "gauge",
           "History samples kept.",
           srv_hist_count() < srv_hist_len() ? srv_hist_count()
                                              : srv_hist_len());

  srv__family(b, "leaklab_flag_value", "gauge",
              "Value of each fault (rate 0..1) and guard flag.");
  for (int f = 0; f < srv_flags_count(); f++) {
    srv_buf_printf(b, "leaklab_flag_value{flag=\"%s\",kind=\"%s\"} %.17g\n",
                   srv_flags_name(f), srv_flags_kind(f), srv_flags_get(f));
  }
}

void srv_metrics_handle(srv_req_t *rq) {
  if (!srv_http_query_only(rq, NULL)) return;
  srv_buf_t b;
  srv_buf_init(&b, srv_http_site(rq->route));
  srv_metrics_write(&b);
  if (b.failed) {
    srv_buf_free(&b);
    srv_http_error(rq, 500, "out of memory writing metrics");
    return;
  }
  size_t len;
  char *text = srv_buf_take(&b, &len);
  srv_http_send(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

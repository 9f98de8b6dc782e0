/* metrics.c - the Prometheus exposition. */
#include "metrics.h"

#include <inttypes.h>
#include <string.h>

#include "events.h"
#include "flags.h"
#include "hist.h"
#include "proc.h"
#include "shm.h"
#include "stats.h"

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

typedef struct srv__msite {
  char name[SRV_NAME_MAX];
  const char *route;
#define SRV__MSITE_FIELD(name, kind, metric, help) uint64_t name;
  LAB_SITE_STAT_FIELDS(SRV__MSITE_FIELD)
#undef SRV__MSITE_FIELD
  uint64_t errors[LAB_FAULT_COUNT];
} srv__msite_t;

/* Per-site figures merged by site name. */
static void srv__sites(srv_buf_t *b) {
  size_t n = lab_site_stats(NULL, 0) + 16;
  lab_site_stats_t *all = lab_malloc_named(n * sizeof *all, "metrics.sites");
  srv__msite_t *ms = lab_calloc_named(n, sizeof *ms, "metrics.sites");
  size_t got = lab_site_stats(all, n), m = 0;
  if (got > n) got = n;
  for (size_t i = 0; i < got; i++) {
    if (!all[i].site) continue;
    char name[SRV_NAME_MAX];
    srv_events_site_name(all[i].site, name, sizeof name);
    size_t k = 0;
    while (k < m && strcmp(ms[k].name, name)) k++;
    if (k == m) {
      memcpy(ms[m].name, name, sizeof name);
      srv_route_t r = srv_route_of_site(all[i].site->name);
      ms[m].route = r == SRV_ROUTE_OTHER ? "none" : srv_route_path(r);
      m++;
    }
#define SRV__MSITE_ADD(field, kind, metric, help) ms[k].field += all[i].field;
    LAB_SITE_STAT_FIELDS(SRV__MSITE_ADD)
#undef SRV__MSITE_ADD
    for (int e = 0; e < LAB_FAULT_COUNT; e++) ms[k].errors[e] += all[i].errors[e];
  }
#define SRV__MSITE_OUT(field, kind, metric, help)                            \
  srv__family(b, SRV__METRIC_NAME("leaklab_site_", kind, metric), #kind,     \
              "Per call site: " help ".");                                   \
  for (size_t k = 0; k < m; k++) {                                           \
    srv_buf_puts(b, SRV__METRIC_NAME("leaklab_site_", kind, metric)          \
                    "{site=\"");                                             \
    srv_buf_prom_label(b, ms[k].name);                                       \
    srv_buf_puts(b, "\",route=\"");                                          \
    srv_buf_prom_label(b, ms[k].route);                                      \
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
  lab_free(ms);
  lab_free(all);
}

static void srv__requests(srv_buf_t *b) {
  srv__family(b, "leaklab_http_requests_total", "counter",
              "HTTP requests answered, by route and status.");
  for (int r = 0; r < SRV_ROUTE_COUNT; r++)
    for (int s = 0; s < SRV_STATUS_COUNT; s++) {
      uint64_t n = atomic_load_explicit(&srv_shm->by_route_status[r][s],
                                        memory_order_relaxed);
      if (!n) continue;
      unsigned code = srv_shm_status_code(s);
      srv_buf_puts(b, "leaklab_http_requests_total{route=\"");
      srv_buf_prom_label(b, srv_route_path((srv_route_t)r));
      if (code) srv_buf_printf(b, "\",status=\"%u\"} %" PRIu64 "\n", code, n);
      else srv_buf_printf(b, "\",status=\"other\"} %" PRIu64 "\n", n);
    }

  static const char *const les[SRV_LATENCY_NBUCKETS] = {
#define SRV__LE(label, ns) label,
      SRV_LATENCY_BUCKETS(SRV__LE)
#undef SRV__LE
  };
  srv__family(b, "leaklab_http_request_duration_seconds", "histogram",
              "Time from a request's headers to its completion, by route.");
  for (int r = 0; r < SRV_ROUTE_COUNT; r++) {
    uint64_t counts[SRV_LATENCY_NBUCKETS + 1], total = 0;
    for (int k = 0; k <= SRV_LATENCY_NBUCKETS; k++) {
      counts[k] = atomic_load_explicit(&srv_shm->latency[r][k],
                                       memory_order_relaxed);
      total += counts[k];
    }
    if (!total) continue;
    const char *route = srv_route_path((srv_route_t)r);
    uint64_t cum = 0;
    for (int k = 0; k <= SRV_LATENCY_NBUCKETS; k++) {
      cum += counts[k];
      srv_buf_puts(b, "leaklab_http_request_duration_seconds_bucket{route=\"");
      srv_buf_prom_label(b, route);
      srv_buf_printf(b, "\",le=\"%s\"} %" PRIu64 "\n",
                     k < SRV_LATENCY_NBUCKETS ? les[k] : "+Inf", cum);
    }
    double sum = (double)atomic_load_explicit(&srv_shm->latency_sum_ns[r],
                                              memory_order_relaxed) / 1e9;
    srv__label1(b, "leaklab_http_request_duration_seconds_sum", "route", route);
    srv_buf_printf(b, " %.9f\n", sum);
    srv__label1(b, "leaklab_http_request_duration_seconds_count", "route", route);
    srv_buf_printf(b, " %" PRIu64 "\n", cum);
  }
}

void srv_metrics_write(srv_buf_t *b) {
  srv_proc_info_t pi;
  srv_proc_info(&pi);
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
           (srv_proc_now_ms() - srv_shm->started_at_ms) / 1000);
  srv__u64(b, "leaklab_worker_generation", "gauge",
           "Generation of the worker answering (1 for the first).",
           srv_shm_self.generation);
  srv__u64(b, "leaklab_worker_requests_total", "counter",
           "Requests the worker answering has answered.",
           srv_stats_worker_requests());

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

#define SRV__CTR_METRIC(name, help)                                          \
  srv__u64(b, "leaklab_" #name "_total", "counter", "Lifetime: " help ".",   \
           SRV_COUNTER(name));
  SRV_COUNTER_FIELDS(SRV__CTR_METRIC)
#undef SRV__CTR_METRIC
  srv__u64(b, "leaklab_events_total", "counter",
           "Events recorded: heap errors and lifecycle events.",
           srv_events_last());
  srv__u64(b, "leaklab_history_samples", "gauge",
           "History samples kept.",
           srv_hist_count() < srv_shm->hist_len ? srv_hist_count()
                                                 : srv_shm->hist_len);

  srv__family(b, "leaklab_flag_value", "gauge",
              "Value of each fault (rate 0..1) and guard flag.");
  for (int f = 0; f < SRV_FLAG_COUNT; f++) {
    srv_buf_printf(b, "leaklab_flag_value{flag=\"%s\",kind=\"%s\"} %.17g\n",
                   srv_flags_name((srv_flag_t)f), srv_flags_kind((srv_flag_t)f),
                   srv_flags_get((srv_flag_t)f));
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

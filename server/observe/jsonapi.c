/* jsonapi.c - the JSON API handlers. */
#include "observe/jsonapi.h"

#include <cjson/cJSON.h>
#include <lab/cjson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/mem.h"
#include "http/reqstats.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/hist.h"
#include "observe/sites.h"
#include "observe/stacks.h"
#include "observe/stats.h"
#include "observe/workers.h"

static srv_jsonapi_budget_fn srv__budget;

void srv_jsonapi_set_budget(srv_jsonapi_budget_fn fn) { srv__budget = fn; }

/* ---- /healthz, /api/stats ---- */

void srv_jsonapi_healthz(srv_req_t *rq) {
  if (!srv_http_query_only(rq, NULL)) return;
  srv_http_send_static(rq, 200, "application/json", "{\"status\":\"ok\"}\n");
}

void srv_jsonapi_stats(srv_req_t *rq) {
  if (!srv_http_query_only(rq, NULL)) return;
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_stats_json(&j);
  srv_http_send_json(rq, 200, &j);
}

/* ---- /api/history ---- */

static void srv__sample_json(srv_json_t *j, const srv_sample_t *s) {
  srv_json_obj(j, NULL);
  srv_json_u64(j, "t_ms", s->t_ms);
  srv_json_u64(j, "rss_bytes", s->rss_bytes);
  srv_json_u64(j, "vm_bytes", s->vm_bytes);
  srv_json_u64(j, "cpu_ms", s->cpu_ms);
#define SRV__HEAP_JSON(name, kind, metric, help) srv_json_u64(j, #name, s->heap_##name);
  LAB_STAT_FIELDS(SRV__HEAP_JSON)
#undef SRV__HEAP_JSON
  srv_json_obj(j, "errors");
#define SRV__ERR_JSON(name, desc) srv_json_u64(j, #name, s->errors[LAB_FAULT_##name]);
  LAB_FAULT_MAP(SRV__ERR_JSON)
#undef SRV__ERR_JSON
  srv_json_end(j);
  srv_json_u64(j, "requests", s->requests);
  srv_json_f64(j, "rate_per_s", s->rate_per_s);
  /* Lifetime answers by status, so a page opened late can draw the
   * rates of the whole window from the history alone. */
  srv_reqstats_status_json(j, "by_status", s->by_status);
  srv_json_arr(j, "top_sites");
  for (int k = 0; k < SRV_TOP_SITES && s->top_site[k]; k++) {
    srv_json_obj(j, NULL);
    srv_json_str(j, "site", srv_hist_site_name(s->top_site[k] - 1u));
    srv_json_u64(j, "live_bytes", s->top_bytes[k]);
    srv_json_end(j);
  }
  srv_json_end(j);
  srv_json_end(j);
}

void srv_jsonapi_history(srv_req_t *rq) {
  static const char *const allowed[] = {"since", "limit", NULL};
  uint64_t since = 0, limit = SRV_HIST_CAP;
  if (!srv_http_query_only(rq, allowed) ||
      !srv_http_query_u64(rq, "since", 0, UINT64_MAX, &since) ||
      !srv_http_query_u64(rq, "limit", 1, SRV_HIST_CAP, &limit))
    return;
  uint64_t last = srv_hist_count();
  uint64_t len = srv_hist_len();
  uint64_t first = last > len ? last - len + 1 : 1;
  /* Samples are in time order: find the first one newer than since, and
   * keep at most `limit` of the newest. */
  uint64_t lo = first, hi = last + 1;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    srv_sample_t s;
    if (!srv_hist_get(mid, &s) || s.t_ms <= since) lo = mid + 1;
    else hi = mid;
  }
  uint64_t start = lo;
  if (last + 1 - start > limit) start = last + 1 - limit;
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_u64(&j, "sample_ms", srv_hist_sample_ms());
  srv_json_u64(&j, "capacity", len);
  srv_json_arr(&j, "samples");
  for (uint64_t n = start; n <= last; n++) {
    srv_sample_t s;
    if (srv_hist_get(n, &s) && s.t_ms > since) srv__sample_json(&j, &s);
  }
  srv_json_end(&j);
  srv_json_end(&j);
  srv_http_send_json(rq, 200, &j);
}

/* ---- /api/flags ---- */

static void srv__flags_doc(srv_req_t *rq, unsigned status) {
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_u64(&j, "version", srv_flags_version());
  srv_json_arr(&j, "flags");
  for (int i = 0; i < srv_flags_count(); i++) {
    srv_flag_t f = i;
    srv_json_obj(&j, NULL);
    srv_json_str(&j, "name", srv_flags_name(f));
    srv_json_str(&j, "kind", srv_flags_kind(f));
    srv_json_str(&j, "type", srv_flags_type_name(f));
    srv_flags_value_json(&j, "value", f);
    if (srv_flags_type(f) == SRV_FLAG_BOOL)
      srv_json_bool(&j, "default", srv_flags_default(f) != 0);
    else
      srv_json_f64(&j, "default", srv_flags_default(f));
    srv_json_str(&j, "description", srv_flags_desc(f));
    if (srv_flags_mistake(f)) srv_json_str(&j, "mistake", srv_flags_mistake(f));
    srv_json_end(&j);
  }
  srv_json_end(&j);
  srv_json_end(&j);
  srv_http_send_json(rq, status, &j);
}

/* Apply a validated set of changes and answer with the flags, or answer
 * 400 with what is wrong. */
static void srv__flags_apply(srv_req_t *rq, int err,
                             const srv_flags_change_t *c) {
  if (err) {
    if (c->flag[0]) srv_http_error_flag(rq, 400, c->flag, c->why);
    else srv_http_error(rq, 400, "%s", c->why);
    return;
  }
  srv_flags_set_many(c->ids, c->values, c->n);
  srv__flags_doc(rq, 200);
}

typedef struct srv__flags_query {
  srv_flags_change_t *change; /* what the pairs so far ask for */
  int err;                    /* the first pair's failure, or 0 */
} srv__flags_query_t;

/* One decoded query pair, as MHD hands it over. */
static enum MHD_Result srv__flags_pair(void *cls, enum MHD_ValueKind kind,
                                       const char *key, size_t key_len,
                                       const char *value, size_t value_len) {
  (void)kind;
  srv__flags_query_t *q = cls;
  q->err = srv_flags_change_add(q->change, key, key_len, value, value_len);
  return q->err ? MHD_NO : MHD_YES;
}

void srv_jsonapi_flags(srv_req_t *rq) {
  if (rq->method == SRV_M_GET || rq->method == SRV_M_HEAD) {
    if (!srv_http_query_only(rq, NULL)) return;
    srv__flags_doc(rq, 200);
    return;
  }
  if (!srv_http_authorized(rq)) {
    srv_http_error(rq, 401, "changing flags needs 'Authorization: Bearer "
                            "<admin token>'");
    return;
  }
  srv_flags_change_t *c = srv_mem_alloc(sizeof *c, SRV_MEM_OUTSIDE);
  srv_flags_change_init(c);
  if (rq->method == SRV_M_PATCH) {
    if (srv_http_query_only(rq, NULL))
      srv__flags_apply(rq, srv_flags_parse_patch(rq->body, rq->body_len, c), c);
    goto out_free_change;
  }
  /* POST: flags in the query string (MHD decodes it, the same checks as
   * srv_flags_parse_query apply), or a JSON object in the body. */
  srv__flags_query_t q = {c, SRV_OK};
  MHD_get_connection_values_n(rq->conn, MHD_GET_ARGUMENT_KIND,
                              srv__flags_pair, &q);
  if (q.err || c->n) srv__flags_apply(rq, q.err, c);
  else if (rq->body_len)
    srv__flags_apply(rq, srv_flags_parse_patch(rq->body, rq->body_len, c), c);
  else
    srv_http_error(rq, 400, "no flags given: POST /api/flags?<name>=<value>");
out_free_change:
  srv_mem_free(c, SRV_MEM_OUTSIDE);
}

void srv_jsonapi_flags_reset(srv_req_t *rq) {
  if (!srv_http_query_only(rq, NULL)) return;
  if (!srv_http_authorized(rq)) {
    srv_http_error(rq, 401, "changing flags needs 'Authorization: Bearer "
                            "<admin token>'");
    return;
  }
  srv_flags_reset();
  srv__flags_doc(rq, 200);
}

/* ---- /api/recycle ---- */

void srv_jsonapi_recycle(srv_req_t *rq) {
  if (!srv_http_query_only(rq, NULL)) return;
  if (!srv_http_authorized(rq)) {
    srv_http_error(rq, 401, "replacing the worker needs 'Authorization: Bearer "
                            "<admin token>'");
    return;
  }
  if (srv_workers_ask_handover()) {
    srv_http_error(rq, 409, "no supervisor to replace the worker "
                            "(--single-process)");
    return;
  }
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_str(&j, "status", "a new worker is starting; this one drains");
  srv_json_i64(&j, "worker", (int64_t)getpid());
  srv_json_u64(&j, "generation", srv_workers_self.generation);
  srv_json_end(&j);
  srv_http_send_json(rq, 202, &j);
}

/* ---- /api/leaks ---- */

static int srv__leak_cmp(const void *a, const void *b) {
  const srv_site_row_t *x = a, *y = b;
  if (x->live_bytes != y->live_bytes) return x->live_bytes < y->live_bytes ? 1 : -1;
  return strcmp(x->name, y->name);
}

/* Stacks shown per site in /api/leaks (all of them: /api/stacks). */
#define SRV__LEAK_STACKS 5

void srv_jsonapi_leaks(srv_req_t *rq) {
  static const char *const allowed[] = {"top", NULL};
  uint64_t top = 20;
  if (!srv_http_query_only(rq, allowed) ||
      !srv_http_query_u64(rq, "top", 1, 4096, &top))
    return;
  size_t m;
  srv_site_row_t *leaks = srv_sites_merge(true, &m);
  if (!leaks) {
    srv_http_error(rq, 500, "out of memory listing the sites");
    return;
  }
  qsort(leaks, m, sizeof *leaks, srv__leak_cmp);
  size_t nstacks = 0;
  srv_stack_row_t *stacks = srv_stacks_collect(SRV_STACKS_BY_LIVE, 0, &nstacks, NULL);

  lab_stats_t st;
  lab_stats(&st);
  uint64_t budget = srv__budget ? srv__budget() : 0;
  uint64_t now = srv_clock_now_ms();
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_u64(&j, "t_ms", now);
  srv_json_u64(&j, "live_bytes", st.live_bytes);
  srv_json_u64(&j, "live_blocks", st.live_blocks);
  if (budget) srv_json_u64(&j, "budget_bytes", budget);
  else srv_json_null(&j, "budget_bytes");
  srv_json_u64(&j, "sites_live", m);
  srv_json_arr(&j, "sites");
  for (size_t k = 0; k < m && k < top; k++) {
    srv_site_row_t *l = &leaks[k];
    srv_json_obj(&j, NULL);
    srv_json_str(&j, "site", l->name);
    if (l->route != SRV_ROUTE_OTHER) srv_json_str(&j, "route", srv_route_path(l->route));
    else srv_json_null(&j, "route");
    srv_json_str(&j, "file", srv_sites_file(l->site));
    srv_json_i64(&j, "line", l->site->line);
    srv_json_str(&j, "function", l->site->func ? l->site->func : "");
    srv_json_u64(&j, "blocks", l->live_blocks);
    srv_json_u64(&j, "bytes", l->live_bytes);
    srv_json_u64(&j, "total_allocs", l->total_allocs);
    srv_json_u64(&j, "total_bytes", l->total_bytes);
    int idx = srv_hist_site_find(l->name);
    srv_growth_t g = {0, 0, false};
    uint64_t since = 0;
    if (idx >= 0) {
      srv_hist_growth((unsigned)idx, &g);
      since = srv_hist_live_since((unsigned)idx);
    }
    /* The heap keeps no per-block times: the oldest live block is at most
     * as old as the site's current run of having live blocks. */
    if (since && now >= since) srv_json_f64(&j, "oldest_age_s", (double)(now - since) / 1000.0);
    else srv_json_null(&j, "oldest_age_s");
    srv_json_f64(&j, "growth_bytes_per_s", g.bytes_per_s);
    srv_json_f64(&j, "growth_window_s", g.window_s);
    srv_json_bool(&j, "suspected_leak", g.steady);
    if (budget && g.bytes_per_s > 0) {
      double left = st.live_bytes >= budget ? 0 : (double)(budget - st.live_bytes);
      srv_json_f64(&j, "seconds_to_budget", left / g.bytes_per_s);
    } else {
      srv_json_null(&j, "seconds_to_budget");
    }
    srv_sites_errors_json(&j, "errors", l->errors);
    /* The site's biggest stacks, with their frames. */
    srv_json_arr(&j, "stacks");
    for (size_t s = 0, shown = 0; s < nstacks && shown < SRV__LEAK_STACKS; s++) {
      if (strcmp(stacks[s].site, l->name)) continue;
      shown++;
      srv_json_obj(&j, NULL);
      srv_json_u64(&j, "id", stacks[s].s.id);
      srv_json_u64(&j, "blocks", stacks[s].s.live_blocks);
      srv_json_u64(&j, "bytes", stacks[s].s.live_bytes);
      srv_stacks_frames_json(&j, "frames", &stacks[s]);
      srv_json_end(&j);
    }
    srv_json_end(&j);
    srv_json_end(&j);
  }
  srv_json_end(&j);
  srv_json_end(&j);
  srv_mem_free(leaks, SRV_MEM_OUTSIDE);
  srv_mem_free(stacks, SRV_MEM_OUTSIDE);
  srv_http_send_json(rq, 200, &j);
}

/* ---- /api/events ---- */

static void srv__event_json(const srv_event_t *ev, void *ctx) {
  srv_json_t *j = ctx;
  srv_json_obj(j, NULL);
  srv_json_u64(j, "seq", ev->seq);
  srv_json_u64(j, "t_ms", ev->t_ms);
  srv_json_str(j, "type", srv_events_type_name(ev->type));
  srv_json_i64(j, "pid", ev->pid);
  srv_json_u64(j, "generation", ev->generation);
  if (ev->type == SRV_EVENT_heap_error) {
    srv_json_str(j, "kind", lab_fault_name((lab_fault_t)ev->kind));
    srv_json_str(j, "site", ev->site);
    srv_route_t r = srv_route_of_site(ev->site);
    if (r != SRV_ROUTE_OTHER) srv_json_str(j, "route", srv_route_path(r));
    else srv_json_null(j, "route");
    srv_json_str(j, "seen_at", ev->seen_at);
    if (ev->freed_at[0]) srv_json_str(j, "freed_at", ev->freed_at);
    srv_json_u64(j, "size", ev->size);
    srv_json_i64(j, "offset", ev->offset);
    char ptr[32];
    snprintf(ptr, sizeof ptr, "0x%llx", (unsigned long long)ev->ptr);
    srv_json_str(j, "ptr", ptr);
  } else if (ev->site[0]) {
    /* A lifecycle event about an allocation (oom): where and how big. */
    srv_json_str(j, "site", ev->site);
    srv_route_t r = srv_route_of_site(ev->site);
    if (r != SRV_ROUTE_OTHER) srv_json_str(j, "route", srv_route_path(r));
    else srv_json_null(j, "route");
    srv_json_u64(j, "size", ev->size);
  }
  srv_json_str(j, "message", ev->text);
  srv_json_end(j);
}

void srv_jsonapi_events(srv_req_t *rq) {
  static const char *const allowed[] = {"since", "limit", NULL};
  uint64_t since = 0, limit = 1000;
  if (!srv_http_query_only(rq, allowed) ||
      !srv_http_query_u64(rq, "since", 0, UINT64_MAX, &since) ||
      !srv_http_query_u64(rq, "limit", 1, SRV_EVENTS_MAX, &limit))
    return;
  uint64_t last = srv_events_last();
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_u64(&j, "last_seq", last);
  srv_json_arr(&j, "events");
  srv_events_walked_t w;
  srv_events_walk(since, last, (size_t)limit, srv__event_json, &j, &w);
  srv_json_end(&j);
  srv_json_u64(&j, "dropped", w.dropped);
  srv_json_end(&j);
  srv_http_send_json(rq, 200, &j);
}

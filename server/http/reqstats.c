/* reqstats.c - per-route request counters in the shared region. */
#include "http/reqstats.h"

#include <stdatomic.h>
#include <stdio.h>

#include "core/counters.h"
#include "core/err.h"
#include "core/shm.h"

/* The block this module owns in the region. */
typedef struct srv__reqstats {
  _Atomic uint64_t by_status[SRV_ROUTE_SLOTS][SRV_STATUS_COUNT];
  _Atomic uint64_t latency[SRV_ROUTE_SLOTS][SRV_LATENCY_NBUCKETS + 1];
  _Atomic uint64_t latency_sum_ns[SRV_ROUTE_SLOTS];
} srv__reqstats_t;

static srv__reqstats_t *srv__rs;
static srv_counter_t *srv__requests;

static const uint64_t srv__latency_ns[SRV_LATENCY_NBUCKETS] = {
#define SRV__LAT_NS(label, ns) (uint64_t)(ns),
    SRV_LATENCY_BUCKETS(SRV__LAT_NS)
#undef SRV__LAT_NS
};

static const char *const srv__latency_labels[SRV_LATENCY_NBUCKETS] = {
#define SRV__LAT_LABEL(label, ns) label,
    SRV_LATENCY_BUCKETS(SRV__LAT_LABEL)
#undef SRV__LAT_LABEL
};

static const unsigned srv__status_codes[SRV_STATUS_COUNT] = {
#define SRV__STATUS_CODE(code) code,
    SRV_STATUS_MAP(SRV__STATUS_CODE)
#undef SRV__STATUS_CODE
    0,
};

int srv_reqstats_setup(void) {
  srv__rs = srv_shm_alloc(sizeof *srv__rs);
  srv__requests = srv_counters_add(
      "requests", "requests answered since the first worker started");
  return srv__rs && srv__requests ? SRV_OK : SRV_ENOMEM;
}

static int srv__slot(srv_route_t r) {
  return r >= 0 && r < SRV_ROUTE_SLOTS ? r : SRV_ROUTE_OTHER;
}

void srv_reqstats_done(srv_route_t route, unsigned status, uint64_t latency_ns) {
  if (!srv__rs) return;
  int r = srv__slot(route);
  int b = 0;
  while (b < SRV_LATENCY_NBUCKETS && latency_ns > srv__latency_ns[b]) b++;
  atomic_fetch_add_explicit(&srv__rs->latency[r][b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&srv__rs->latency_sum_ns[r], latency_ns,
                            memory_order_relaxed);
  atomic_fetch_add_explicit(&srv__rs->by_status[r][srv_reqstats_status_index(status)],
                            1, memory_order_relaxed);
  srv_counter_add(srv__requests, 1);
}

uint64_t srv_reqstats_total(void) { return srv_counter_get(srv__requests); }

void srv_reqstats_totals(uint64_t out[SRV_STATUS_COUNT]) {
  for (int s = 0; s < SRV_STATUS_COUNT; s++) {
    out[s] = 0;
    for (int r = 0; r < srv_router_count(); r++) out[s] += srv_reqstats_count(r, s);
  }
}

void srv_reqstats_status_json(srv_json_t *j, const char *key,
                              const uint64_t counts[SRV_STATUS_COUNT]) {
  srv_json_obj(j, key);
  for (int s = 0; s < SRV_STATUS_COUNT; s++) {
    if (!counts[s]) continue;
    char code[16];
    unsigned c = srv_reqstats_status_code(s);
    if (c) snprintf(code, sizeof code, "%u", c);
    else snprintf(code, sizeof code, "other");
    srv_json_u64(j, code, counts[s]);
  }
  srv_json_end(j);
}

uint64_t srv_reqstats_count(srv_route_t r, int s) {
  if (!srv__rs || s < 0 || s >= SRV_STATUS_COUNT) return 0;
  return atomic_load_explicit(&srv__rs->by_status[srv__slot(r)][s],
                              memory_order_relaxed);
}

uint64_t srv_reqstats_latency(srv_route_t r, int k) {
  if (!srv__rs || k < 0 || k > SRV_LATENCY_NBUCKETS) return 0;
  return atomic_load_explicit(&srv__rs->latency[srv__slot(r)][k],
                              memory_order_relaxed);
}

uint64_t srv_reqstats_latency_sum_ns(srv_route_t r) {
  if (!srv__rs) return 0;
  return atomic_load_explicit(&srv__rs->latency_sum_ns[srv__slot(r)],
                              memory_order_relaxed);
}

const char *srv_reqstats_bucket_label(int k) {
  return k >= 0 && k < SRV_LATENCY_NBUCKETS ? srv__latency_labels[k] : "+Inf";
}

int srv_reqstats_status_index(unsigned status) {
  for (int i = 0; i < SRV_STATUS_OTHER; i++)
    if (srv__status_codes[i] == status) return i;
  return SRV_STATUS_OTHER;
}

unsigned srv_reqstats_status_code(int index) {
  return index >= 0 && index < SRV_STATUS_COUNT ? srv__status_codes[index] : 0;
}

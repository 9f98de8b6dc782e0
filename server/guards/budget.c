/* budget.c - shedding load over a memory budget. */
#include "guards/budget.h"

#include <stdatomic.h>

#include <lab/alloc.h>

#include "core/counters.h"
#include "core/err.h"
#include "core/shm.h"
#include "http/http.h"
#include "observe/events.h"
#include "observe/flags.h"

static const srv_flag_def_t srv__flag = {
    "guard.budget_bytes", SRV_FLAG_BYTES, 0,
    "memory budget for the heap's live bytes: app endpoints answer 503 "
    "while the heap is over it (0 = off); /api/leaks reports the time to "
    "reach it",
    NULL};

/* The block this module owns in the region. */
typedef struct srv__budget_block {
  _Atomic uint64_t shedding; /* 1 while over budget (for the events) */
} srv__budget_block_t;

static srv__budget_block_t *srv__bb;
static srv_flag_t srv__id = -1;
static srv_counter_t *srv__shed;

int srv_budget_register(void) { return srv_flags_register(&srv__flag, 1, &srv__id); }

uint64_t srv_budget_bytes(void) { return srv__id >= 0 ? srv_flags_u64(srv__id) : 0; }

uint64_t srv_budget_shed(void) { return srv_counter_get(srv__shed); }

unsigned srv_budget_level(uint64_t live, uint64_t budget) {
  if (!budget) return 0;
  /* Compared in double: no overflow for any budget. */
  double l = (double)live * 100.0;
  return l > (double)budget * 100 ? 2 : l >= (double)budget * 95 ? 1 : 0;
}

/* Whether to shed at this level; logs the crossings as shed events. */
static bool srv__over(unsigned level, uint64_t live, uint64_t budget) {
  if (!budget) {
    if (atomic_load_explicit(&srv__bb->shedding, memory_order_relaxed))
      atomic_store(&srv__bb->shedding, 0);
    return false;
  }
  bool over = level == 2;
  uint64_t was = atomic_exchange(&srv__bb->shedding, over ? 1 : 0);
  if (over && !was)
    srv_events_log(SRV_EVENT_shed,
                   "heap live bytes %llu over guard.budget_bytes %llu: "
                   "shedding app requests",
                   (unsigned long long)live, (unsigned long long)budget);
  else if (!over && was)
    srv_events_log(SRV_EVENT_shed, "heap back under guard.budget_bytes: "
                                   "serving app requests again");
  return over;
}

/* The begin hook: one reading of the budget per request. Near it,
 * keep-alive ends; over it, a sheddable request is refused. */
static void srv__begin(srv_req_t *rq) {
  uint64_t budget = srv_budget_bytes();
  uint64_t live = budget ? lab_live_bytes() : 0;
  unsigned level = srv_budget_level(live, budget);
  rq->close = rq->close || level > 0;
  if (srv_route_has(rq->route, SRV_ROUTE_SHEDDABLE) &&
      (srv_route_methods(rq->route) & rq->method) &&
      srv__over(level, live, budget)) {
    rq->refuse = "over the memory budget (guard.budget_bytes)";
    srv_counter_add(srv__shed, 1);
  }
}

int srv_budget_setup(void) {
  srv__bb = srv_shm_alloc(sizeof *srv__bb);
  srv__shed = srv_counters_add(
      "shed_requests", "app requests refused with 503 over guard.budget_bytes");
  if (!srv__bb || !srv__shed) return SRV_ENOMEM;
  return srv_http_add_hooks(&(srv_http_hooks_t){.begin = srv__begin});
}

/* reclaim.c - the request-scope guard. */
#include "guards/reclaim.h"

#include <lab/alloc.h>

#include "core/counters.h"
#include "core/err.h"
#include "http/http.h"
#include "observe/flags.h"

static const srv_flag_def_t srv__flag = {
    "guard.request_scope", SRV_FLAG_BOOL, 0,
    "when a request ends, free every block it allocated and did not free "
    "or detach (the request scope reclaims it); contains every fault leak "
    "except the session cache, whose entries are detached on purpose",
    NULL};

/* X(name, help): this guard's lifetime counters. */
#define SRV_RECLAIM_COUNTERS(X)                                              \
  X(scope_left_blocks, "blocks requests left live when they ended")         \
  X(scope_left_bytes, "bytes requests left live when they ended")           \
  X(reclaimed_blocks, "blocks guard.request_scope freed as requests ended") \
  X(reclaimed_bytes, "bytes guard.request_scope freed as requests ended")

static struct {
#define SRV__RECLAIM_FIELD(name, help) srv_counter_t *name;
  SRV_RECLAIM_COUNTERS(SRV__RECLAIM_FIELD)
#undef SRV__RECLAIM_FIELD
} srv__c;

static srv_flag_t srv__id = -1;

int srv_reclaim_register(void) { return srv_flags_register(&srv__flag, 1, &srv__id); }

uint64_t srv_reclaim_blocks(void) { return srv_counter_get(srv__c.reclaimed_blocks); }
uint64_t srv_reclaim_bytes(void) { return srv_counter_get(srv__c.reclaimed_bytes); }

/* The end hook: close the request's scope, reclaiming with the guard on. */
static void srv__end(srv_req_t *rq) {
  if (!rq->scope) return;
  bool reclaim = srv__id >= 0 && srv_flags_on(srv__id);
  lab_scope_report_t rep;
  lab_scope_close(rq->scope, reclaim ? LAB_SCOPE_RECLAIM : 0, &rep);
  rq->scope = NULL;
  if (rep.blocks && reclaim) {
    srv_counter_add(srv__c.reclaimed_blocks, rep.blocks);
    srv_counter_add(srv__c.reclaimed_bytes, rep.bytes);
  } else if (rep.blocks) {
    srv_counter_add(srv__c.scope_left_blocks, rep.blocks);
    srv_counter_add(srv__c.scope_left_bytes, rep.bytes);
  }
}

int srv_reclaim_setup(void) {
#define SRV__RECLAIM_ADD(name, help)                                         \
  if (!(srv__c.name = srv_counters_add(#name, help))) return SRV_ENOMEM;
  SRV_RECLAIM_COUNTERS(SRV__RECLAIM_ADD)
#undef SRV__RECLAIM_ADD
  return srv_http_add_hooks(&(srv_http_hooks_t){.end = srv__end});
}

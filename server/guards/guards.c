/* guards.c - the guards' set-up and their /api/stats section. */
#include "guards/guards.h"

#include "core/json.h"
#include "guards/budget.h"
#include "guards/memlimit.h"
#include "guards/reclaim.h"
#include "guards/recycle.h"
#include "observe/jsonapi.h"
#include "observe/stats.h"

int srv_guards_register(uint64_t memory_limit) {
  int err = srv_memlimit_register(memory_limit);
  if (!err) err = srv_reclaim_register();
  if (!err) err = srv_budget_register();
  if (!err) err = srv_recycle_register();
  return err;
}

static void srv__section(srv_json_t *j, const char *key) {
  srv_json_obj(j, key);
  srv_json_u64(j, "reclaimed_bytes", srv_reclaim_bytes());
  srv_json_u64(j, "reclaimed_blocks", srv_reclaim_blocks());
  srv_json_u64(j, "shed_requests", srv_budget_shed());
  srv_json_u64(j, "recycles", srv_recycle_total());
  srv_json_u64(j, "oom_refusals", srv_memlimit_refusals());
  srv_json_end(j);
}

int srv_guards_setup(void) {
  int err = srv_memlimit_setup();
  if (!err) err = srv_reclaim_setup();
  if (!err) err = srv_budget_setup();
  if (!err) err = srv_recycle_setup();
  if (!err) err = srv_stats_add_section("guards", srv__section);
  if (!err) srv_jsonapi_set_budget(srv_budget_bytes);
  return err;
}

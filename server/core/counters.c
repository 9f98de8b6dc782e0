/* counters.c - the registry of lifetime counters. Names and help texts
 * are process-local (the same in every process: registered before the
 * first fork); the values are in the region. */
#include "core/counters.h"

#include <string.h>

#include "core/err.h"
#include "core/shm.h"

static srv_counter_t *srv__values; /* SRV_COUNTERS_MAX words in the region */
static const char *srv__names[SRV_COUNTERS_MAX];
static const char *srv__helps[SRV_COUNTERS_MAX];
static size_t srv__n;

int srv_counters_setup(void) {
  srv__values = srv_shm_alloc(SRV_COUNTERS_MAX * sizeof *srv__values);
  srv__n = 0;
  return srv__values ? SRV_OK : SRV_ENOMEM;
}

srv_counter_t *srv_counters_add(const char *name, const char *help) {
  if (!srv__values) return NULL;
  for (size_t i = 0; i < srv__n; i++)
    if (!strcmp(srv__names[i], name)) return &srv__values[i];
  if (srv__n == SRV_COUNTERS_MAX) return NULL;
  srv__names[srv__n] = name;
  srv__helps[srv__n] = help;
  return &srv__values[srv__n++];
}

size_t srv_counters_count(void) { return srv__n; }
const char *srv_counters_name(size_t i) { return i < srv__n ? srv__names[i] : ""; }
const char *srv_counters_help(size_t i) { return i < srv__n ? srv__helps[i] : ""; }

uint64_t srv_counters_value(size_t i) {
  return i < srv__n ? srv_counter_get(&srv__values[i]) : 0;
}

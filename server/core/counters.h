/* counters.h - lifetime counters in the shared region, so they outlive
 * every worker. Each module declares its own counters (an X-macro of its
 * own) and registers them at set-up, before the first fork; the observer
 * lists every registered counter in /api/stats and /metrics
 * (leaklab_<name>_total) without knowing which module owns it. */
#ifndef SRV_COUNTERS_H
#define SRV_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_COUNTERS_MAX 32 /* counters the region holds */

/* One counter: a word in the region. */
typedef _Atomic uint64_t srv_counter_t;

/* Make the counters' block in the region; SRV_ENOMEM. */
int srv_counters_setup(void);
/* Register counter `name` (static text) with its help text; returns its
 * word, or NULL when there is no block or it is full. Registering a name
 * twice returns the same word. */
srv_counter_t *srv_counters_add(const char *name, const char *help);
/* Counters registered. */
size_t srv_counters_count(void);
/* Name of counter i. */
const char *srv_counters_name(size_t i);
/* Help text of counter i. */
const char *srv_counters_help(size_t i);
/* Value of counter i. */
uint64_t srv_counters_value(size_t i);

/* Bump a counter (NULL: not registered, nothing counted). */
static inline void srv_counter_add(srv_counter_t *c, uint64_t n) {
  if (c) atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
/* Read a counter (NULL reads 0). */
static inline uint64_t srv_counter_get(srv_counter_t *c) {
  return c ? atomic_load_explicit(c, memory_order_relaxed) : 0;
}

#endif /* SRV_COUNTERS_H */

/* unit.h - what the server's unit tests share: the lab heap's figures for
 * leak checks, and main(). */
#ifndef UNIT_H
#define UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <lab/alloc.h>

/* Live blocks on the lab heap right now. */
static inline uint64_t unit_live_blocks(void) {
  lab_stats_t st;
  lab_stats(&st);
  return st.live_blocks;
}

/* Live blocks charged to one site (0 if it never allocated). */
static inline uint64_t unit_site_live_blocks(const lab_site_t *site) {
  static lab_site_stats_t all[4096];
  size_t n = lab_site_stats(all, 4096);
  for (size_t i = 0; i < n && i < 4096; i++)
    if (all[i].site == site) return all[i].live_blocks;
  return 0;
}

/* main(): run tests[]. */
#define UNIT_MAIN(group, tests)                                              \
  int main(void) { return cmocka_run_group_tests_name(group, tests, NULL, NULL); }

/* A function kept whole and not cloned, so its address is its own, for
 * tests that look it up (clang has no noipa; noinline and used do). */
#if defined(__clang__)
#define UNIT_NOIPA __attribute__((noinline, used))
#else
#define UNIT_NOIPA __attribute__((noipa))
#endif

#endif /* UNIT_H */

/* unit.h - what the server's unit tests share: the lab heap's figures for
 * leak checks, and a main() that keeps known bugs apart.
 *
 * Each file lists its tests in tests[]; a test that shows a bug not yet
 * fixed goes in known_bugs[] instead, so the file's suite stays green
 * while the bug stands and ctest runs each known bug on its own as a test
 * expected to fail (tests/unit/CMakeLists.txt). When one is fixed, its
 * ctest entry fails: move the test into tests[]. */
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

/* main(): run tests[], or with "--known-bug NAME" that test of
 * known_bugs[] alone. */
#define UNIT_MAIN_WITH_BUGS(group, tests, known_bugs)                        \
  int main(int argc, char **argv) {                                          \
    if (argc == 3 && !strcmp(argv[1], "--known-bug")) {                      \
      cmocka_set_test_filter(argv[2]);                                       \
      return cmocka_run_group_tests_name(group "_known_bugs", known_bugs,    \
                                         NULL, NULL);                        \
    }                                                                        \
    return cmocka_run_group_tests_name(group, tests, NULL, NULL);            \
  }

#endif /* UNIT_H */

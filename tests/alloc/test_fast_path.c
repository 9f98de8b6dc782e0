/* The common malloc and free run in one piece (lab__seg_alloc_fast,
 * lab__seg_free_fast) and hand anything else to the general path: these
 * are the cases where a free made by the program, not a flush, finds
 * something the fast path must not handle itself. Each is still caught,
 * and the accounting stays exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "deliberate.h"
#include "events.h"

static lab_site_t alloc_site = {__FILE__, "test", "victim", 1, 0};
static lab_site_t bad_site = {__FILE__, "test", "culprit", 2, 0};
static lab_site_t churn_site = {__FILE__, "test", "churn", 3, 0};

/* More frees than the quarantine holds, so the block freed before them
 * leaves it during one of them. */
#define CHURN 2048

static int setup(void **state) {
  (void)state;
  lab_flush_quarantine();
  events_reset();
  return 0;
}

static void churn(size_t n) {
  for (int i = 0; i < CHURN; i++) lab_free_at(lab_malloc_at(n, &churn_site), &churn_site);
}

static void write_after_free_is_caught_when_a_later_free_evicts_the_block(void **state) {
  (void)state;
  uint64_t live = live_bytes();
  char *p = lab_malloc_at(64, &alloc_site);
  lab_free_at(p, &bad_site);
  DELIBERATE(p[5] = 'z');
  churn(64);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  assert_ptr_equal(events.ev[0].free_site, &bad_site);
  assert_int_equal(events.ev[0].offset, 5);
  assert_int_equal(live_bytes(), live);
}

static void a_header_written_after_free_is_caught_when_a_later_free_evicts_it(void **state) {
  (void)state;
  uint64_t live = live_bytes();
  char *p = lab_malloc_at(100, &alloc_site);
  lab_free_at(p, &bad_site);
  DELIBERATE(p[-2] = 0); /* the canary */
  churn(100);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_int_equal(live_bytes(), live);
}

static void every_free_of_a_churn_is_counted_once(void **state) {
  (void)state;
  lab_site_stats_t before = site_stats(&churn_site);
  uint64_t live = live_bytes();
  for (size_t n = 1; n < 3000; n = n * 2 + 1) churn(n);
  lab_site_stats_t after = site_stats(&churn_site);
  assert_int_equal(after.total_allocs - before.total_allocs, 11 * CHURN);
  assert_int_equal(after.live_blocks, 0);
  assert_int_equal(after.live_bytes, 0);
  assert_int_equal(live_bytes(), live);
  assert_int_equal(events.n, 0);
}

static void *alloc_blocks(void *arg) {
  void **p = arg;
  for (int i = 0; i < 64; i++) p[i] = lab_malloc_at(200, &alloc_site);
  return NULL;
}

static void blocks_of_another_thread_go_back_to_it_when_a_free_evicts_them(void **state) {
  (void)state;
  void *p[64];
  /* What the tests above damaged on purpose stays out of use, and
   * lab_check reports it each time. */
  size_t damaged = lab_check();
  events_reset();
  uint64_t live = live_bytes();
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, alloc_blocks, p), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  for (int i = 0; i < 64; i++) lab_free_at(p[i], &bad_site);
  churn(200); /* they leave this thread's quarantine for their heap */
  assert_int_equal(events.n, 0);
  assert_int_equal(live_bytes(), live);
  assert_int_equal(lab_check(), damaged);
}

int main(void) {
  lab_init(NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(write_after_free_is_caught_when_a_later_free_evicts_the_block, setup),
      cmocka_unit_test_setup(a_header_written_after_free_is_caught_when_a_later_free_evicts_it, setup),
      cmocka_unit_test_setup(every_free_of_a_churn_is_counted_once, setup),
      cmocka_unit_test_setup(blocks_of_another_thread_go_back_to_it_when_a_free_evicts_them, setup),
  };
  return cmocka_run_group_tests_name("fast_path", tests, NULL, NULL);
}

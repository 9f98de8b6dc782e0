/* Request scopes report and reclaim exactly what a scope leaked; detached
 * blocks survive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "events.h"

static lab_site_t tree_site = {__FILE__, "handler", "tree", 1, 0};
static lab_site_t buf_site = {__FILE__, "handler", "buffer", 2, 0};
static lab_site_t cache_site = {__FILE__, "handler", "cache", 3, 0};

static int setup(void **state) {
  (void)state;
  events_reset();
  return 0;
}

static void closing_reports_what_is_left_by_site_largest_first(void **state) {
  (void)state;
  uint64_t live0 = live_bytes();
  lab_scope_t *s = lab_scope_open("GET /report");
  assert_non_null(s);
  assert_ptr_equal(lab_scope_current(), s);
  for (int i = 0; i < 10; i++) lab_malloc_at(100, &tree_site);
  for (int i = 0; i < 3; i++) lab_malloc_at(1000, &buf_site);
  void *freed = lab_malloc_at(5000, &buf_site);
  lab_free(freed); /* freed in time: not a leak */
  size_t blocks, bytes;
  lab_scope_usage(s, &blocks, &bytes);
  assert_int_equal(blocks, 13);
  assert_int_equal(bytes, 4000);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_null(lab_scope_current());
  assert_int_equal(r.blocks, 13);
  assert_int_equal(r.bytes, 4000);
  assert_int_equal(r.nsites, 2);
  assert_ptr_equal(r.sites[0].site, &buf_site);
  assert_int_equal(r.sites[0].blocks, 3);
  assert_int_equal(r.sites[0].bytes, 3000);
  assert_ptr_equal(r.sites[1].site, &tree_site);
  assert_int_equal(r.sites[1].blocks, 10);
  assert_int_equal(r.sites[1].bytes, 1000);
  assert_int_equal(live_bytes(), live0);
  assert_int_equal(events.n, 0);
}

static void reclaim_counters_equal_the_leak(void **state) {
  (void)state;
  lab_stats_t st0, st;
  lab_stats(&st0);
  for (int req = 0; req < 100; req++) {
    lab_scope_t *s = lab_scope_open("POST /echo");
    lab_malloc_at(64, &tree_site);
    lab_calloc_at(2, 50, &tree_site);
    lab_scope_close(s, LAB_SCOPE_RECLAIM, NULL);
  }
  lab_stats(&st);
  assert_int_equal(st.reclaimed_blocks - st0.reclaimed_blocks, 200);
  assert_int_equal(st.reclaimed_bytes - st0.reclaimed_bytes, 100 * 164);
  assert_int_equal(st.live_bytes, st0.live_bytes);
}

static void a_detached_block_survives_the_reclaim(void **state) {
  (void)state;
  lab_scope_t *s = lab_scope_open("POST /session");
  char *entry = lab_strdup_at("session-42", &cache_site);
  char *grown = lab_malloc_at(16, &cache_site);
  lab_malloc_at(77, &tree_site);
  assert_int_equal(lab_detach(entry), LAB_OK);
  assert_int_equal(lab_detach(grown), LAB_OK);
  /* A detached block stays out of the scope when realloc moves it. */
  grown = lab_realloc_at(grown, 4000, &cache_site);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 1);
  assert_int_equal(r.bytes, 77);
  assert_string_equal(entry, "session-42");
  assert_int_equal(lab_usable_size(grown), 4000);
  lab_free(entry);
  lab_free(grown);
  assert_int_equal(events.n, 0);
}

static void realloc_keeps_a_block_in_its_scope(void **state) {
  (void)state;
  uint64_t live0 = live_bytes();
  lab_scope_t *s = lab_scope_open("grow");
  char *p = lab_malloc_at(10, &buf_site);
  for (int i = 0; i < 20; i++) p = lab_realloc_at(p, 10 + 100 * i, &buf_site);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 1);
  assert_int_equal(r.bytes, 10 + 100 * 19);
  assert_int_equal(live_bytes(), live0);
}

static void closing_without_reclaim_leaves_blocks_live_and_untagged(void **state) {
  (void)state;
  uint64_t live0 = live_bytes();
  lab_scope_t *s = lab_scope_open("keep");
  char *p = lab_malloc_at(300, &tree_site);
  lab_scope_report_t r;
  lab_scope_close(s, 0, &r);
  assert_int_equal(r.blocks, 1);
  assert_int_equal(live_bytes(), live0 + 300);
  /* The scope is reused by the next request; p must not belong to it. */
  lab_scope_t *s2 = lab_scope_open("next");
  lab_scope_close(s2, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 0);
  lab_free(p);
  assert_int_equal(live_bytes(), live0);
  assert_int_equal(events.n, 0);
}

static void a_scope_holds_more_blocks_than_fit_inline(void **state) {
  (void)state;
  uint64_t live0 = live_bytes();
  lab_scope_t *s = lab_scope_open("many");
  enum { N = 20000 };
  static void *p[N];
  for (int i = 0; i < N; i++) p[i] = lab_malloc_at(8, &tree_site);
  for (int i = 0; i < N; i += 2) lab_free(p[i]);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, N / 2);
  assert_int_equal(r.bytes, 8 * N / 2);
  assert_int_equal(live_bytes(), live0);
}

static void *free_in_thread(void *p) {
  lab_free(p);
  return NULL;
}

static void a_block_freed_by_another_thread_leaves_the_scope(void **state) {
  (void)state;
  lab_scope_t *s = lab_scope_open("handoff");
  void *p = lab_malloc_at(123, &buf_site);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, free_in_thread, p), 0);
  pthread_join(t, NULL);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 0);
  assert_int_equal(events.n, 0);
}

static void *request_in_thread(void *failed) {
  lab_scope_t *s = lab_scope_open("short-lived");
  if (!s) {
    *(int *)failed = 1;
    return NULL;
  }
  lab_free(lab_malloc_at(16, &buf_site));
  lab_scope_close(s, 0, NULL);
  return NULL;
}

/* Each thread's heap keeps its last closed scope for its next open; a
 * thread that exits leaves it with its heap, and the next thread adopts
 * both. So threads that come and go take no new scopes, and scope ids
 * (65,534 in all) do not run out. */
static void short_lived_threads_reuse_their_heaps_scopes(void **state) {
  (void)state;
  int failed = 0;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, request_in_thread, &failed), 0);
  pthread_join(t, NULL);
  lab_stats_t before, after;
  lab_stats(&before);
  for (int i = 0; i < 2000 && !failed; i++) {
    assert_int_equal(pthread_create(&t, NULL, request_in_thread, &failed), 0);
    pthread_join(t, NULL);
  }
  lab_stats(&after);
  assert_int_equal(failed, 0);
  assert_int_equal(after.heaps, before.heaps);
  assert_int_equal(after.overhead_bytes, before.overhead_bytes);
  assert_int_equal(events.n, 0);
}

static void allocations_outside_any_scope_are_not_tagged(void **state) {
  (void)state;
  lab_scope_t *s = lab_scope_open("outer");
  lab_scope_enter(NULL);
  void *p = lab_malloc_at(50, &buf_site);
  lab_scope_enter(s);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 0);
  assert_int_equal(lab_usable_size(p), 50);
  lab_free(p);
  assert_int_equal(lab_detach(NULL), LAB_EINVAL);
  int local;
  assert_int_equal(lab_detach(&local), LAB_EINVAL);
  assert_int_equal(events.n, 0); /* detach of a bad pointer is no fault */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(closing_reports_what_is_left_by_site_largest_first, setup),
      cmocka_unit_test_setup(reclaim_counters_equal_the_leak, setup),
      cmocka_unit_test_setup(a_detached_block_survives_the_reclaim, setup),
      cmocka_unit_test_setup(realloc_keeps_a_block_in_its_scope, setup),
      cmocka_unit_test_setup(closing_without_reclaim_leaves_blocks_live_and_untagged, setup),
      cmocka_unit_test_setup(a_scope_holds_more_blocks_than_fit_inline, setup),
      cmocka_unit_test_setup(a_block_freed_by_another_thread_leaves_the_scope, setup),
      cmocka_unit_test_setup(allocations_outside_any_scope_are_not_tagged, setup),
      cmocka_unit_test_setup(short_lived_threads_reuse_their_heaps_scopes, setup),
  };
  return cmocka_run_group_tests_name("scope", tests, NULL, NULL);
}

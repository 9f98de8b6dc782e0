/* Allocation failure: make the N-th request to the OS fail, for N = 1, 2,
 * ... until a run injects no failure; every run ends with a clean error and
 * no leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "events.h"

#define BLOCKS 12000

/* A request's worth of work with the try family: many small blocks (new
 * segments), a few large ones (their own mappings), a scope (its array
 * grows), a realloc. On any failure it undoes everything and returns
 * LAB_ENOMEM. */
static int workload(void) {
  static void *p[BLOCKS];
  size_t made = 0;
  int err = LAB_OK;
  lab_scope_t *s = lab_scope_open("oom");
  if (!s) return LAB_ENOMEM;
  for (; made < BLOCKS; made++) {
    size_t n = made % 1000 == 999 ? 300000 + made : 200 + made % 3000;
    if (!(p[made] = lab_try_malloc(n))) {
      assert_int_equal(errno, ENOMEM);
      err = LAB_ENOMEM;
      goto out_free_blocks;
    }
  }
  void *q = lab_try_realloc(p[0], 500000);
  if (!q) {
    err = LAB_ENOMEM; /* p[0] is still ours and still valid */
    assert_int_equal(lab_usable_size(p[0]), 200);
    goto out_free_blocks;
  }
  p[0] = q;
out_free_blocks:
  for (size_t i = 0; i < made; i++) lab_free(p[i]);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 0);
  return err;
}

static void every_injected_os_failure_ends_cleanly_without_a_leak(void **state) {
  (void)state;
  events_reset();
  lab_flush_quarantine();
  lab_trim();
  lab_stats_t st0, st;
  lab_stats(&st0);
  int failed_runs = 0;
  for (uint64_t n = 1;; n++) {
    uint64_t injected = lab_debug_os_failures();
    lab_debug_fail_os_at(n);
    int err = workload();
    lab_debug_fail_os_at(0);
    bool hit = lab_debug_os_failures() != injected;
    if (hit) {
      assert_int_equal(err, LAB_ENOMEM);
      failed_runs++;
    } else {
      assert_int_equal(err, LAB_OK);
    }
    lab_flush_quarantine();
    lab_trim();
    lab_stats(&st);
    assert_int_equal(st.live_bytes, st0.live_bytes);
    assert_int_equal(st.live_blocks, st0.live_blocks);
    /* What was mapped went back, but for scope arrays kept in the pool. */
    assert_true(st.mapped_bytes <= st0.mapped_bytes + 64 * 1024);
    if (!hit) break;
    assert_true(n < 1000);
  }
  assert_true(failed_runs >= 5);
  assert_int_equal(events.n, 0);
}

static int handler_calls;
static void release_memory_handler(size_t size) {
  (void)size;
  handler_calls++;
  lab_debug_fail_os_at(0); /* "free some memory": the retry succeeds */
}

static void the_never_null_family_calls_the_handler_then_retries(void **state) {
  (void)state;
  lab_set_oom_handler(release_memory_handler);
  handler_calls = 0;
  lab_debug_fail_os_at(1);
  void *p = lab_malloc(1 << 22); /* large: needs the OS */
  assert_non_null(p);
  assert_int_equal(handler_calls, 1);
  lab_free(p);
  lab_set_oom_handler(NULL);
}

static void try_calloc_rejects_an_overflowing_product(void **state) {
  (void)state;
  uint64_t live = live_bytes();
  errno = 0;
  assert_null(lab_try_calloc(SIZE_MAX / 2, 3));
  assert_int_equal(errno, ENOMEM);
  assert_null(lab_try_malloc(SIZE_MAX - 10));
  assert_int_equal(live_bytes(), live);
}

/* What the refusal callback saw. */
static struct {
  int calls;
  size_t size;
  const lab_site_t *site;
} refused;

static void note_refusal(size_t size, const lab_site_t *site, void *ctx) {
  assert_ptr_equal(ctx, &refused);
  refused.calls++;
  refused.size = size;
  refused.site = site;
}

static void an_allocation_past_the_limit_is_refused_counted_and_told(void **state) {
  (void)state;
  lab_flush_quarantine();
  lab_trim();
  lab_stats_t st0, st;
  lab_stats(&st0);
  memset(&refused, 0, sizeof refused);
  lab_set_refusal_callback(note_refusal, &refused);
  lab_set_limit(st0.mapped_bytes + (1u << 20));
  assert_int_equal(lab_limit(), st0.mapped_bytes + (1u << 20));
  /* 512 KiB fits under the cap; 2 MiB more does not. */
  void *fits = lab_try_malloc_at(512 << 10, LAB_SITE("oom.fits"));
  assert_non_null(fits);
  errno = 0;
  const lab_site_t *big = LAB_SITE("oom.big");
  assert_null(lab_try_malloc_at(2u << 20, big));
  assert_int_equal(errno, ENOMEM);
  lab_stats(&st);
  assert_int_equal(st.refusals, st0.refusals + 1);
  assert_int_equal(refused.calls, 1);
  assert_int_equal(refused.size, 2u << 20);
  assert_ptr_equal(refused.site, big);
  /* Freeing gives the room back. */
  lab_free(fits);
  lab_trim();
  void *again = lab_try_malloc(768 << 10);
  assert_non_null(again);
  lab_free(again);
  lab_set_limit(0);
  void *free_now = lab_try_malloc(2u << 20);
  assert_non_null(free_now);
  lab_free(free_now);
  lab_set_refusal_callback(NULL, NULL);
}

static void the_reserve_lets_one_thread_past_the_limit(void **state) {
  (void)state;
  lab_trim();
  lab_stats_t st;
  lab_stats(&st);
  lab_set_limit(st.mapped_bytes + (256u << 10));
  assert_null(lab_try_malloc(1u << 20));
  assert_int_equal(lab_set_reserve(4u << 20), 0);
  void *p = lab_try_malloc(1u << 20);
  assert_non_null(p);
  assert_int_equal(lab_set_reserve(0), 4u << 20);
  assert_null(lab_try_malloc(1u << 20));
  lab_free(p);
  lab_set_limit(0);
}

static void small_blocks_are_refused_once_no_page_is_left(void **state) {
  (void)state;
  lab_flush_quarantine();
  lab_trim();
  lab_stats_t st;
  lab_stats(&st);
  lab_set_limit(st.mapped_bytes + (1u << 20));
  static void *p[1 << 16];
  size_t n = 0;
  while (n < sizeof p / sizeof *p && (p[n] = lab_try_malloc(100))) n++;
  /* About a MiB of 100-byte blocks (their slots and headers), then no
   * more: the cap stops the heap, not the test's array. */
  assert_true(n > 4000 && n < sizeof p / sizeof *p);
  assert_int_equal(errno, ENOMEM);
  for (size_t i = 0; i < n; i++) lab_free(p[i]);
  lab_set_limit(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_injected_os_failure_ends_cleanly_without_a_leak),
      cmocka_unit_test(the_never_null_family_calls_the_handler_then_retries),
      cmocka_unit_test(try_calloc_rejects_an_overflowing_product),
      cmocka_unit_test(an_allocation_past_the_limit_is_refused_counted_and_told),
      cmocka_unit_test(the_reserve_lets_one_thread_past_the_limit),
      cmocka_unit_test(small_blocks_are_refused_once_no_page_is_left),
  };
  return cmocka_run_group_tests_name("oom", tests, NULL, NULL);
}

/* Each detector fires with the right kind and sites, the process goes on,
 * and the bad operation changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "deliberate.h"
#include "events.h"

static lab_site_t alloc_site = {__FILE__, "test", "victim", 1, 0};
static lab_site_t bad_site = {__FILE__, "test", "culprit", 2, 0};

static int setup(void **state) {
  (void)state;
  lab_flush_quarantine();
  events_reset();
  return 0;
}

static void double_free_is_reported_with_both_sites_and_skipped(void **state) {
  (void)state;
  char *p = lab_malloc_at(40, &alloc_site);
  lab_free_at(p, &bad_site);
  uint64_t live = live_bytes();
  uint64_t before = fault_count(LAB_FAULT_double_free);
  lab_free_at(p, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_double_free);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  assert_ptr_equal(events.ev[0].site, &bad_site);
  assert_ptr_equal(events.ev[0].free_site, &bad_site);
  assert_int_equal(events.ev[0].size, 40);
  assert_int_equal(fault_count(LAB_FAULT_double_free), before + 1);
  assert_int_equal(live_bytes(), live);
  assert_int_equal(site_stats(&alloc_site).errors[LAB_FAULT_double_free], 1);
  /* The heap still works, and the slot was not handed out twice. */
  char *a = lab_malloc(40), *b = lab_malloc(40);
  assert_ptr_not_equal(a, b);
  lab_free(a);
  lab_free(b);
}

static void free_of_a_stack_address_is_reported_and_ignored(void **state) {
  (void)state;
  char local[32];
  uint64_t live = live_bytes();
  lab_free_at(local, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_invalid_free);
  assert_null(events.ev[0].alloc_site);
  assert_ptr_equal(events.ev[0].site, &bad_site);
  assert_ptr_equal(events.ev[0].ptr, local);
  assert_int_equal(live_bytes(), live);
}

static void free_of_an_interior_pointer_names_the_block(void **state) {
  (void)state;
  char *p = lab_malloc_at(100, &alloc_site);
  memset(p, 'x', 100);
  lab_free_at(p + 10, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_invalid_free);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  assert_int_equal(events.ev[0].offset, 10);
  /* The block is untouched and still live. */
  assert_int_equal(lab_usable_size(p), 100);
  assert_int_equal(p[99], 'x');
  lab_free(p);
  assert_int_equal(events.n, 1);
}

static void free_of_a_libc_pointer_is_reported_and_ignored(void **state) {
  (void)state;
  char *m = malloc(64);
  assert_non_null(m);
  lab_free_at(m, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_invalid_free);
  free(m); /* libc's block was left alone */
}

static void overflow_by_one_byte_is_caught_at_free(void **state) {
  (void)state;
  size_t len = strlen("overflow");
  char *p = lab_malloc_at(len, &alloc_site); /* the missing + 1 */
  memcpy(p, "overflow", len + 1);
  lab_free_at(p, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_overflow);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  assert_ptr_equal(events.ev[0].site, &bad_site); /* the free that saw it */
  assert_int_equal(events.ev[0].offset, (long)len);
  assert_int_equal(site_stats(&alloc_site).errors[LAB_FAULT_overflow], 1);
}

static void underflow_into_the_header_is_caught_and_the_free_skipped(void **state) {
  (void)state;
  char *p = lab_malloc_at(32, &alloc_site);
  uint64_t live = live_bytes();
  p[-1] = 0;
  lab_free_at(p, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_overflow);
  assert_int_equal(events.ev[0].offset, -1);
  assert_int_equal(live_bytes(), live); /* not freed: header untrusted */
  p[-1] = 0x4C; /* repair the canary's top byte so the block can go */
  lab_free(p);
  assert_int_equal(events.n, 1);
}

static void whole_heap_check_finds_an_overflow_in_a_live_block(void **state) {
  (void)state;
  char *p = lab_malloc_at(24, &alloc_site);
  assert_int_equal(lab_check(), 0);
  p[24 + 3] = 'y';
  assert_int_equal(lab_check(), 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_overflow);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  assert_int_equal(events.ev[0].offset, 27);
  p[24 + 3] = (char)0xFB; /* repair the guard */
  lab_free(p);
  assert_int_equal(events.n, 1);
}

static void write_after_free_is_caught_when_the_block_leaves_quarantine(void **state) {
  (void)state;
  char *p = lab_malloc_at(64, &alloc_site);
  lab_free_at(p, &bad_site);
  unsigned char seen;
  DELIBERATE(seen = (unsigned char)p[5]; KNOWN(seen));
  assert_int_equal(seen, LAB_FILL_FREE); /* poisoned */
  DELIBERATE(p[5] = 'z');
  assert_int_equal(events.n, 0);
  lab_flush_quarantine();
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  assert_ptr_equal(events.ev[0].free_site, &bad_site);
  assert_int_equal(events.ev[0].offset, 5);
}

static void whole_heap_check_finds_a_write_after_free_in_quarantine(void **state) {
  (void)state;
  char *p = lab_malloc_at(64, &alloc_site);
  lab_free(p);
  DELIBERATE(p[63] = 0);
  assert_int_equal(lab_check(), 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_int_equal(events.ev[0].offset, 63);
}

static void fresh_blocks_hold_the_fill_pattern_and_calloc_zeroes(void **state) {
  (void)state;
  for (size_t n = 1; n < 300000; n = n * 3 + 1) {
    unsigned char *p = lab_malloc(n), *z = lab_calloc(n, 1);
    unsigned char first, last; /* uninitialised on purpose */
    DELIBERATE(first = p[0]; last = p[n - 1]; KNOWN(first); KNOWN(last));
    assert_int_equal(first, LAB_FILL_ALLOC);
    assert_int_equal(last, LAB_FILL_ALLOC);
    assert_int_equal(z[0], 0);
    assert_int_equal(z[n - 1], 0);
    memset(z, 0xFF, n); /* dirty it so the slot is reused dirty */
    lab_free(p);
    lab_free(z);
    lab_flush_quarantine();
  }
  assert_int_equal(events.n, 0);
}

/* Offset of the first byte of p[0..n) that is not the fill pattern, or -1
 * (read through DELIBERATE: the bytes are uninitialised on purpose). */
static long first_unfilled(const unsigned char *p, size_t n) {
  long at = -1;
  DELIBERATE(for (size_t i = 0; i < n && at < 0; i++) {
    unsigned char c = p[i];
    KNOWN(c);
    if (c != LAB_FILL_ALLOC) at = (long)i;
  });
  return at;
}

static void a_reused_slot_shows_the_pattern_in_every_byte_of_a_bigger_block(void **state) {
  (void)state;
  /* A block written all over, freed and evicted; then a bigger block in
   * the same slot: every byte it gets, past the old block and its guard
   * too, must read as the pattern. After malloc and after calloc. */
  unsigned reused = 0, past = 0;
  for (size_t n = 16; n < 100000; n += n / 16 + 1) {
    for (int zero = 0; zero < 2; zero++) {
      const size_t grow[] = {n + 9, n + n / 8 + 9, n + n / 4 + 9};
      for (size_t k = 0; k < sizeof grow / sizeof grow[0]; k++) {
        unsigned char *p = zero ? lab_calloc(n, 1) : lab_malloc(n);
        memset(p, 0x11, n);
        lab_free(p);
        lab_flush_quarantine();
        size_t m = grow[k];
        unsigned char *q = lab_malloc(m);
        bool same = q == p;
        long bad = same ? first_unfilled(q, m) : -1;
        lab_free(q);
        lab_flush_quarantine();
        if (bad >= 0)
          fail_msg("n=%zu%s then m=%zu: byte %ld is not the pattern", n,
                   zero ? " (calloc)" : "", m, bad);
        reused += same;
        past += same && m > n + 8; /* bytes past the old block and guard */
      }
    }
  }
  print_message("%u reused slots, %u with bytes past the old guard\n", reused, past);
  assert_true(past > 50);
  assert_int_equal(events.n, 0);
}

static void large_blocks_are_checked_like_small_ones(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *p = lab_malloc_at(n, &alloc_site);
  memset(p, 1, n);
  lab_free_at(p + 4096, &bad_site);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_invalid_free);
  assert_ptr_equal(events.ev[0].alloc_site, &alloc_site);
  p[n] = 0;
  lab_free_at(p, &bad_site);
  assert_int_equal(events.n, 2);
  assert_int_equal(events.ev[1].kind, LAB_FAULT_overflow);
  assert_int_equal(events.ev[1].offset, (long)n);
}

static void realloc_of_a_bad_pointer_reports_and_returns_null(void **state) {
  (void)state;
  char local[16];
  assert_null(lab_realloc_at(local, 32, &bad_site));
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_invalid_free);
}

static void realloc_of_a_freed_block_is_a_use_after_free_not_a_double_free(void **state) {
  (void)state;
  char *p = lab_malloc_at(40, &alloc_site);
  lab_free_at(p, &bad_site);
  static lab_site_t realloc_site = {__FILE__, "test", "late-realloc", 3, 0};
  uint64_t live = live_bytes();
  uint64_t doubles = fault_count(LAB_FAULT_double_free);
  assert_null(lab_realloc_at(p, 80, &realloc_site));
  assert_null(lab_try_realloc_at(p, 80, &realloc_site));
  assert_int_equal(events.n, 2);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(events.ev[i].kind, LAB_FAULT_use_after_free);
    assert_ptr_equal(events.ev[i].alloc_site, &alloc_site);
    assert_ptr_equal(events.ev[i].free_site, &bad_site);
    assert_ptr_equal(events.ev[i].site, &realloc_site);
    assert_ptr_equal(events.ev[i].ptr, p);
    assert_int_equal(events.ev[i].size, 40);
  }
  assert_int_equal(fault_count(LAB_FAULT_double_free), doubles);
  assert_int_equal(live_bytes(), live);
  /* Evicted from quarantine, the slot is still known as freed. */
  lab_flush_quarantine();
  assert_null(lab_realloc_at(p, 80, &realloc_site));
  assert_int_equal(events.n, 3);
  assert_int_equal(events.ev[2].kind, LAB_FAULT_use_after_free);
}

int main(void) {
  /* Whole blocks: several tests look at the patterns far past the first
   * LAB_FILL_DEFAULT bytes. */
  lab_config_t cfg = {.fill_limit = LAB_FILL_WHOLE};
  if (lab_init(&cfg) != LAB_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(double_free_is_reported_with_both_sites_and_skipped, setup),
      cmocka_unit_test_setup(free_of_a_stack_address_is_reported_and_ignored, setup),
      cmocka_unit_test_setup(free_of_an_interior_pointer_names_the_block, setup),
      cmocka_unit_test_setup(free_of_a_libc_pointer_is_reported_and_ignored, setup),
      cmocka_unit_test_setup(overflow_by_one_byte_is_caught_at_free, setup),
      cmocka_unit_test_setup(underflow_into_the_header_is_caught_and_the_free_skipped, setup),
      cmocka_unit_test_setup(whole_heap_check_finds_an_overflow_in_a_live_block, setup),
      cmocka_unit_test_setup(write_after_free_is_caught_when_the_block_leaves_quarantine, setup),
      cmocka_unit_test_setup(whole_heap_check_finds_a_write_after_free_in_quarantine, setup),
      cmocka_unit_test_setup(fresh_blocks_hold_the_fill_pattern_and_calloc_zeroes, setup),
      cmocka_unit_test_setup(a_reused_slot_shows_the_pattern_in_every_byte_of_a_bigger_block, setup),
      cmocka_unit_test_setup(large_blocks_are_checked_like_small_ones, setup),
      cmocka_unit_test_setup(realloc_of_a_bad_pointer_reports_and_returns_null, setup),
      cmocka_unit_test_setup(realloc_of_a_freed_block_is_a_use_after_free_not_a_double_free, setup),
  };
  return cmocka_run_group_tests_name("detect", tests, NULL, NULL);
}

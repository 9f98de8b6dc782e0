/* The libc backend keeps the same accounting and scopes as the lab heap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "events.h"

static lab_site_t site = {__FILE__, "libc", "libc-site", 1, 0};

static void accounting_and_fill_match_the_lab_heap(void **state) {
  (void)state;
  assert_string_equal(lab_backend_name(), "libc");
  lab_stats_t st0, st;
  lab_stats(&st0);
  unsigned char *p = lab_malloc_at(1000, &site);
  unsigned char *z = lab_calloc_at(10, 10, &site);
  assert_int_equal(p[999], LAB_FILL_ALLOC);
  assert_int_equal(z[99], 0);
  lab_stats(&st);
  assert_int_equal(st.live_bytes - st0.live_bytes, 1100);
  assert_int_equal(st.live_blocks - st0.live_blocks, 2);
  assert_true(st.mapped_bytes > 0); /* from mallinfo2 */
  assert_int_equal(site_stats(&site).live_bytes, 1100);
  p = lab_realloc_at(p, 5000, &site);
  assert_int_equal(lab_usable_size(p), 5000);
  lab_free(p);
  lab_free(z);
  assert_int_equal(live_bytes(), st0.live_bytes);
}

static void an_overflow_is_caught_at_free(void **state) {
  (void)state;
  events_reset();
  char *p = lab_malloc_at(10, &site);
  p[10] = 0;
  lab_free(p);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_overflow);
  assert_ptr_equal(events.ev[0].alloc_site, &site);
}

static void scopes_reclaim_through_libc(void **state) {
  (void)state;
  uint64_t live = live_bytes();
  lab_scope_t *s = lab_scope_open("libc");
  lab_malloc_at(64, &site);
  lab_strdup_at("leak", &site);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 2);
  assert_int_equal(r.bytes, 69);
  assert_int_equal(live_bytes(), live);
}

static void the_limit_caps_the_live_bytes_held_of_malloc(void **state) {
  (void)state;
  uint64_t live = lab_live_bytes();
  lab_stats_t st0, st;
  lab_stats(&st0);
  lab_set_limit(live + 100000);
  void *a = lab_try_malloc(60000);
  assert_non_null(a);
  assert_null(lab_try_malloc(60000)); /* 120,000 and headers: past it */
  lab_stats(&st);
  assert_int_equal(st.refusals, st0.refusals + 1);
  lab_free(a);
  void *b = lab_try_malloc(60000);
  assert_non_null(b);
  lab_free(b);
  lab_set_limit(0);
}

static void at_the_end_live_bytes_is_zero(void **state) {
  (void)state;
  assert_int_equal(live_bytes(), 0);
}

int main(void) {
  lab_config_t cfg = {.backend = LAB_BACKEND_LIBC, .fill_limit = LAB_FILL_WHOLE};
  if (lab_init(&cfg) != LAB_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accounting_and_fill_match_the_lab_heap),
      cmocka_unit_test(an_overflow_is_caught_at_free),
      cmocka_unit_test(scopes_reclaim_through_libc),
      cmocka_unit_test(the_limit_caps_the_live_bytes_held_of_malloc),
      cmocka_unit_test(at_the_end_live_bytes_is_zero),
  };
  return cmocka_run_group_tests_name("libc_backend", tests, NULL, NULL);
}

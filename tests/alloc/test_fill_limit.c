/* By default (fill_limit 0: LAB_FILL_DEFAULT), only the first 48 bytes of
 * each block are filled, poisoned and checked; every detector still works
 * within them, and a smaller block is covered whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliberate.h"
#include "events.h"

#define LIMIT LAB_FILL_DEFAULT

static void only_the_first_bytes_are_filled(void **state) {
  (void)state;
  unsigned char *p = lab_malloc(1000);
  unsigned char in, past;
  DELIBERATE(in = p[LIMIT - 1]; past = p[LIMIT]; KNOWN(in); KNOWN(past));
  assert_int_equal(in, LAB_FILL_ALLOC);
  (void)past; /* unspecified: whatever the slot held */
  unsigned char *z = lab_calloc(1000, 1);
  assert_int_equal(z[999], 0); /* calloc still zeroes everything */
  lab_free(p);
  lab_free(z);
}

static void a_block_within_the_limit_is_filled_and_poisoned_whole(void **state) {
  (void)state;
  events_reset();
  unsigned char *p = lab_malloc(LIMIT - 8);
  for (size_t i = 0; i < LIMIT - 8; i++) {
    unsigned char c;
    DELIBERATE(c = p[i]; KNOWN(c));
    assert_int_equal(c, LAB_FILL_ALLOC);
  }
  lab_free(p);
  unsigned char last;
  DELIBERATE(last = p[LIMIT - 9]; KNOWN(last));
  assert_int_equal(last, LAB_FILL_FREE);
  DELIBERATE(p[LIMIT - 9] = 1);
  lab_flush_quarantine();
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_int_equal(events.ev[0].offset, LIMIT - 9);
}

static void a_write_after_free_inside_the_limit_is_caught(void **state) {
  (void)state;
  events_reset();
  char *p = lab_malloc(1000);
  lab_free(p);
  DELIBERATE(p[LIMIT - 1] = 1);
  lab_flush_quarantine();
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_int_equal(events.ev[0].offset, LIMIT - 1);
}

static void a_write_after_free_past_the_limit_is_not_seen(void **state) {
  (void)state;
  events_reset();
  char *p = lab_malloc(1000);
  lab_free(p);
  DELIBERATE(p[LIMIT + 10] = 1);
  lab_flush_quarantine();
  assert_int_equal(events.n, 0);
}

static void overflow_and_double_free_are_caught_as_before(void **state) {
  (void)state;
  events_reset();
  char *p = lab_malloc(1000);
  p[1000] = 0;
  lab_free(p);
  lab_free(p);
  assert_int_equal(events.n, 2);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_overflow);
  assert_int_equal(events.ev[1].kind, LAB_FAULT_double_free);
}

int main(void) {
  lab_config_t cfg = {0};
  if (lab_init(&cfg) != LAB_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(only_the_first_bytes_are_filled),
      cmocka_unit_test(a_block_within_the_limit_is_filled_and_poisoned_whole),
      cmocka_unit_test(a_write_after_free_inside_the_limit_is_caught),
      cmocka_unit_test(a_write_after_free_past_the_limit_is_not_seen),
      cmocka_unit_test(overflow_and_double_free_are_caught_as_before),
  };
  return cmocka_run_group_tests_name("fill_limit", tests, NULL, NULL);
}

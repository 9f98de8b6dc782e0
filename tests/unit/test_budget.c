/* guards/budget: where the heap's live bytes stand against
 * guard.budget_bytes. From 95 % responses close their connection, over
 * 100 % the app's requests are shed. */
#include "core/err.h"
#include "core/shm.h"
#include "guards/budget.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/workers.h"
#include "unit.h"

#define GiB (1ull << 30)

static void without_a_budget_the_level_is_always_zero(void **state) {
  (void)state;
  assert_int_equal(srv_budget_level(0, 0), 0);
  assert_int_equal(srv_budget_level(GiB, 0), 0);
  assert_int_equal(srv_budget_level(UINT64_MAX, 0), 0);
}

static void below_95_percent_the_level_is_zero(void **state) {
  (void)state;
  assert_int_equal(srv_budget_level(0, 100), 0);
  assert_int_equal(srv_budget_level(94, 100), 0);
  assert_int_equal(srv_budget_level(GiB / 100 * 94, GiB), 0);
}

static void from_just_over_95_percent_to_100_percent_the_level_is_one(
    void **state) {
  (void)state;
  assert_int_equal(srv_budget_level(951, 1000), 1);
  assert_int_equal(srv_budget_level(99, 100), 1);
  assert_int_equal(srv_budget_level(100, 100), 1); /* at it is not over */
  assert_int_equal(srv_budget_level(GiB, GiB), 1);
}

/* Level 1 is "from 95 %", as budget.h says: exactly 95 % included (the
 * comparison was strict once). */
static void at_exactly_95_percent_the_level_is_one(void **state) {
  (void)state;
  assert_int_equal(srv_budget_level(95, 100), 1);
  assert_int_equal(srv_budget_level(950, 1000), 1);
}

static void over_the_budget_the_level_is_two(void **state) {
  (void)state;
  assert_int_equal(srv_budget_level(101, 100), 2);
  assert_int_equal(srv_budget_level(GiB + 1, GiB), 2);
  assert_int_equal(srv_budget_level(2, 1), 2);
  assert_int_equal(srv_budget_level(1, 0), 0);
}

static void huge_values_neither_overflow_nor_wrap(void **state) {
  (void)state;
  /* live * 100 and budget * 95 would wrap in 64 bits. */
  assert_int_equal(srv_budget_level(UINT64_MAX, UINT64_MAX), 1);
  assert_int_equal(srv_budget_level(UINT64_MAX, 1), 2);
  assert_int_equal(srv_budget_level(UINT64_MAX, UINT64_MAX / 2), 2);
  assert_int_equal(srv_budget_level(UINT64_MAX / 2, UINT64_MAX), 0);
  assert_int_equal(srv_budget_level(0, UINT64_MAX), 0);
  assert_int_equal(srv_budget_level(UINT64_MAX / 100 * 97, UINT64_MAX), 1);
}

/* The module's invariant: the budget is the guard.budget_bytes flag. */
static void the_budget_is_the_value_of_guard_budget_bytes(void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 22), SRV_OK);
  assert_int_equal(srv_workers_setup(), SRV_OK);
  assert_int_equal(srv_flags_setup(), SRV_OK);
  assert_int_equal(srv_events_setup(), SRV_OK);
  assert_int_equal(srv_budget_register(), SRV_OK);
  int f = srv_flags_find("guard.budget_bytes");
  assert_true(f >= 0);
  assert_int_equal(srv_flags_type(f), SRV_FLAG_BYTES);
  assert_int_equal(srv_budget_bytes(), 0); /* off by default */
  srv_flags_set_many((srv_flag_t[]){f}, (double[]){64.0 * (1 << 20)}, 1);
  assert_int_equal(srv_budget_bytes(), 64u << 20);
  srv_flags_unregister_all();
  srv_shm_destroy();
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(without_a_budget_the_level_is_always_zero),
    cmocka_unit_test(below_95_percent_the_level_is_zero),
    cmocka_unit_test(from_just_over_95_percent_to_100_percent_the_level_is_one),
    cmocka_unit_test(over_the_budget_the_level_is_two),
    cmocka_unit_test(huge_values_neither_overflow_nor_wrap),
    cmocka_unit_test(the_budget_is_the_value_of_guard_budget_bytes),
    cmocka_unit_test(at_exactly_95_percent_the_level_is_one),
};

UNIT_MAIN("budget", tests)

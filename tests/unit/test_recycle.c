/* guards/recycle: when a worker is due to be replaced, by the requests it
 * answered or by its RSS, with a per-worker jitter so a fleet does not
 * recycle in lockstep, and the RSS ceiling anticipated so a fast-growing
 * worker is replaced before it passes it. */
#include <stdbool.h>
#include <stdio.h>

#include "guards/recycle.h"
#include "unit.h"

#define MiB (1ull << 20)

static char why[256];

/* A worker's state with the lowest jitter (request limit -10 %, RSS
 * ceiling -10 %): the RSS flag 100 MiB is a 90 MiB ceiling. */
static srv_recycle_t low(void) {
  srv_recycle_t r;
  srv_recycle_init(&r, 0, 0);
  return r;
}

static bool due(srv_recycle_t *r, uint64_t req_flag, uint64_t rss_flag,
                uint64_t requests, uint64_t rss, uint64_t now_ms,
                double lead_ms) {
  why[0] = '\0';
  return srv_recycle_due(r, req_flag, rss_flag, requests, rss, now_ms, lead_ms,
                         why, sizeof why);
}

static void the_request_limit_moves_at_most_ten_percent_either_way(
    void **state) {
  (void)state;
  srv_recycle_t r;
  srv_recycle_init(&r, 0, 0);
  assert_int_equal(srv_recycle_request_limit(&r, 1000), 900);
  srv_recycle_init(&r, 0.5, 0);
  assert_int_equal(srv_recycle_request_limit(&r, 1000), 1000);
  srv_recycle_init(&r, 0.999999, 0);
  assert_int_equal(srv_recycle_request_limit(&r, 1000), 1100);
  for (int i = 0; i < 100; i++) {
    srv_recycle_init(&r, i / 100.0, 0.5);
    uint64_t limit = srv_recycle_request_limit(&r, 10000);
    assert_true(limit >= 9000 && limit <= 11000);
  }
}

static void workers_with_different_draws_get_different_limits(void **state) {
  (void)state;
  srv_recycle_t a, b;
  srv_recycle_init(&a, 0.1, 0.5);
  srv_recycle_init(&b, 0.7, 0.5);
  assert_int_not_equal(srv_recycle_request_limit(&a, 1000),
                       srv_recycle_request_limit(&b, 1000));
}

static void no_request_flag_means_no_request_limit(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_int_equal(srv_recycle_request_limit(&r, 0), 0);
  assert_false(due(&r, 0, 0, UINT64_MAX, 0, 1000, 0));
}

static void a_limit_of_one_request_stays_at_least_one(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_int_equal(srv_recycle_request_limit(&r, 1), 1);
  assert_false(due(&r, 1, 0, 0, 0, 1000, 0));
  assert_true(due(&r, 1, 0, 1, 0, 1000, 0));
}

static void a_worker_is_due_when_it_reaches_its_request_limit(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_false(due(&r, 1000, 0, 899, 0, 1000, 0));
  assert_string_equal(why, "");
  assert_true(due(&r, 1000, 0, 900, 0, 1000, 0));
  assert_string_equal(why, "900 requests answered, limit 900 "
                           "(guard.recycle_requests 1000, jittered)");
  assert_true(due(&r, 1000, 0, 5000, 0, 1000, 0));
}

static void no_rss_flag_means_no_rss_ceiling(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_false(due(&r, 0, 0, 0, 1ull << 40, 1000, 1e6));
  assert_false(due(&r, 0, 0, 0, 1ull << 41, 2000, 1e6));
}

static void a_worker_over_its_jittered_rss_ceiling_is_due(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_false(due(&r, 0, 100 * MiB, 0, 89 * MiB, 1000, 0));
  assert_true(due(&r, 0, 100 * MiB, 0, 91 * MiB, 2000, 0));
  assert_string_equal(why, "RSS 91.0 MiB over 90.0 MiB "
                           "(guard.recycle_rss_bytes 100 MiB, jittered)");
}

static void the_rss_ceiling_only_moves_down(void **state) {
  (void)state;
  for (int i = 0; i < 100; i++) {
    srv_recycle_t r;
    srv_recycle_init(&r, 0.5, i / 100.0);
    /* Whatever the draw: at the flag it is due, under 90 % it is not. */
    srv_recycle_t at = r, under = r;
    assert_true(due(&at, 0, 100 * MiB, 0, 100 * MiB + 1, 1000, 0));
    assert_false(due(&under, 0, 100 * MiB, 0, 90 * MiB - 1, 1000, 0));
  }
}

static void a_worker_growing_fast_is_due_before_it_passes_the_ceiling(
    void **state) {
  (void)state;
  srv_recycle_t r = low();
  /* 50 MiB, then 80 MiB a second later: 30 MiB/s, halved by smoothing to
   * 15 MiB/s; a 2 s handover would end at 110 MiB, past 90. */
  assert_false(due(&r, 0, 100 * MiB, 0, 50 * MiB, 10000, 2000));
  assert_true(due(&r, 0, 100 * MiB, 0, 80 * MiB, 11000, 2000));
  assert_string_equal(why, "RSS 80.0 MiB would pass 90.0 MiB in a handover "
                           "(guard.recycle_rss_bytes 100 MiB, jittered)");
}

static void a_worker_at_the_same_rss_is_not_due_under_the_ceiling(
    void **state) {
  (void)state;
  srv_recycle_t r = low();
  for (uint64_t t = 1000; t < 60000; t += 1000)
    assert_false(due(&r, 0, 100 * MiB, 0, 80 * MiB, t, 2000));
  /* Nor one growing too slowly to pass it within the handover. */
  assert_false(due(&r, 0, 100 * MiB, 0, 81 * MiB, 61000, 2000));
}

static void a_shrinking_rss_does_not_count_as_negative_growth(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_false(due(&r, 0, 100 * MiB, 0, 89 * MiB, 1000, 2000));
  assert_false(due(&r, 0, 100 * MiB, 0, 10 * MiB, 2000, 2000));
  assert_true(r.rss_rate == 0);
  /* Back up to 89 MiB in a second: the rate seen is the climb alone. */
  assert_true(due(&r, 0, 100 * MiB, 0, 89 * MiB, 3000, 2000));
}

static void a_burst_of_growth_fades_when_the_rss_stops_growing(void **state) {
  (void)state;
  srv_recycle_t r = low();
  due(&r, 0, 100 * MiB, 0, 40 * MiB, 1000, 1000);
  due(&r, 0, 100 * MiB, 0, 60 * MiB, 2000, 1000); /* 10 MiB/s smoothed */
  assert_true(r.rss_rate > 0);
  double before = r.rss_rate;
  due(&r, 0, 100 * MiB, 0, 60 * MiB, 3000, 1000);
  assert_true(r.rss_rate < before);
}

static void the_reason_is_cut_to_the_buffer_given(void **state) {
  (void)state;
  srv_recycle_t r = low();
  char small[16];
  memset(small, 'x', sizeof small);
  assert_true(srv_recycle_due(&r, 0, 100 * MiB, 0, 95 * MiB, 1000, 0, small, 8));
  assert_string_equal(small, "RSS 95.");
  assert_int_equal(small[8], 'x');
}

/* The module's invariant: requests are judged before RSS, and a look
 * that is due by requests says so. */
static void requests_are_judged_before_rss(void **state) {
  (void)state;
  srv_recycle_t r = low();
  assert_true(due(&r, 10, 100 * MiB, 10, 200 * MiB, 1000, 0));
  assert_non_null(strstr(why, "requests answered"));
  assert_true(due(&r, 10, 100 * MiB, 8, 200 * MiB, 2000, 0));
  assert_non_null(strstr(why, "RSS 200.0 MiB over"));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(the_request_limit_moves_at_most_ten_percent_either_way),
    cmocka_unit_test(workers_with_different_draws_get_different_limits),
    cmocka_unit_test(no_request_flag_means_no_request_limit),
    cmocka_unit_test(a_limit_of_one_request_stays_at_least_one),
    cmocka_unit_test(a_worker_is_due_when_it_reaches_its_request_limit),
    cmocka_unit_test(no_rss_flag_means_no_rss_ceiling),
    cmocka_unit_test(a_worker_over_its_jittered_rss_ceiling_is_due),
    cmocka_unit_test(the_rss_ceiling_only_moves_down),
    cmocka_unit_test(a_worker_growing_fast_is_due_before_it_passes_the_ceiling),
    cmocka_unit_test(a_worker_at_the_same_rss_is_not_due_under_the_ceiling),
    cmocka_unit_test(a_shrinking_rss_does_not_count_as_negative_growth),
    cmocka_unit_test(a_burst_of_growth_fades_when_the_rss_stops_growing),
    cmocka_unit_test(the_reason_is_cut_to_the_buffer_given),
    cmocka_unit_test(requests_are_judged_before_rss),
};

UNIT_MAIN("recycle", tests)

/* observe/hist: the history the sampler writes, and the growth judged from
 * it per call site (srv_hist_growth: the rate over the last minute, and
 * "steady" when it grew in at least 3 of 4 quarters and shrank in none),
 * which is what makes /api/leaks call a site a suspect.
 *
 * Samples are taken by hand with srv_hist_sample (no sampler thread), as
 * the serving worker. Growth is judged on wall-clock time, so the test
 * links with --wrap=clock_gettime (tests/unit/CMakeLists.txt) and sets
 * the wall clock itself: minutes of history in a few milliseconds, no sleep.
 *
 * The history keeps process-local state about the heap's sites next to
 * its block, so the whole file shares one region; each test starts ten
 * minutes after the last so earlier samples fall out of the window. */
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/shm.h"
#include "observe/hist.h"
#include "observe/workers.h"
#include "unit.h"

/* ---- the clock ---- */

static uint64_t fake_ms; /* 0: the real clock */

/* The wall clock as the server reads it (srv_clock_now_ms), set by the
 * test; every other clock passes through. The wrap is on clock_gettime,
 * not srv_clock_now_ms: the release build's link-time optimisation
 * inlines srv_clock_now_ms into its callers, past a wrap. */
int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts) {
  if (clk != CLOCK_REALTIME || !fake_ms) return __real_clock_gettime(clk, ts);
  ts->tv_sec = (time_t)(fake_ms / 1000);
  ts->tv_nsec = (long)(fake_ms % 1000) * 1000000;
  return 0;
}

static int start(void **state) {
  (void)state;
  fake_ms = 1700000000000ull;
  if (srv_shm_create(0) || srv_workers_setup() || srv_hist_setup(1024, 250))
    return -1;
  atomic_store(&srv_workers->worker_pid, (uint64_t)getpid());
  return 0;
}

static int stop(void **state) {
  (void)state;
  srv_shm_destroy();
  return 0;
}

static int later(void **state) {
  (void)state;
  fake_ms += 600000;
  return 0;
}

/* ---- driving a site ---- */

#define POINTS 200

/* A site's blocks, so a test can grow and shrink it. */
typedef struct site {
  const lab_site_t *site;
  void *p[POINTS * 4];
  size_t n;
} site_t;

static void grow(site_t *s, size_t blocks) {
  for (size_t i = 0; i < blocks; i++) {
    assert_true(s->n < POINTS * 4);
    s->p[s->n++] = lab_malloc_at(1000, s->site);
  }
}

static void shrink(site_t *s, size_t blocks) {
  for (size_t i = 0; i < blocks && s->n; i++) lab_free_at(s->p[--s->n], s->site);
}

static void drop(site_t *s) { shrink(s, s->n); }

/* Sample now, then step the clock by ms. */
static void sample(uint64_t step_ms) {
  assert_true(srv_hist_sample());
  fake_ms += step_ms;
}

static srv_growth_t growth_of(const char *name) {
  int i = srv_hist_site_find(name);
  assert_true(i >= 0);
  srv_growth_t g;
  srv_hist_growth((unsigned)i, &g);
  return g;
}

static void a_sample_records_the_time_and_the_heap(void **state) {
  (void)state;
  uint64_t n = srv_hist_count();
  uint64_t t = fake_ms;
  sample(250);
  assert_int_equal(srv_hist_count(), n + 1);
  srv_sample_t s;
  assert_true(srv_hist_get(n + 1, &s));
  assert_int_equal(s.t_ms, t); /* the test's clock is the one read */
  assert_true(s.rss_bytes > 0);
  assert_int_equal(s.heap_live_blocks, unit_live_blocks());
  assert_false(srv_hist_get(n + 2, &s)); /* not yet written */
  assert_false(srv_hist_get(0, &s));
}

static void only_the_serving_worker_writes_samples(void **state) {
  (void)state;
  uint64_t n = srv_hist_count();
  atomic_store(&srv_workers->worker_pid, (uint64_t)getpid() + 1);
  assert_false(srv_hist_sample());
  assert_int_equal(srv_hist_count(), n);
  atomic_store(&srv_workers->worker_pid, (uint64_t)getpid());
  assert_true(srv_hist_sample());
  assert_int_equal(srv_hist_count(), n + 1);
}

static void a_site_growing_every_quarter_grows_steadily(void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.steady"), {0}, 0};
  for (int k = 0; k <= 40; k++) { /* 10 s, a block every 250 ms */
    grow(&s, 1);
    sample(250);
  }
  srv_growth_t g = growth_of("unit.steady");
  assert_true(g.window_s == 10.0);
  assert_true(g.bytes_per_s == 4000.0); /* 40 blocks of 1000 in 10 s */
  assert_true(g.steady);
  drop(&s);
}

static void a_site_that_shrinks_in_one_quarter_is_not_steady(void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.dip"), {0}, 0};
  for (int k = 0; k <= 40; k++) {
    if (k > 20 && k <= 30) shrink(&s, 3); /* a dip in the third quarter */
    else grow(&s, 2);
    sample(250);
  }
  srv_growth_t g = growth_of("unit.dip");
  assert_true(g.bytes_per_s > 0); /* it did grow over the window */
  assert_false(g.steady);
  drop(&s);
}

static void a_site_growing_in_only_half_the_quarters_is_not_steady(
    void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.half"), {0}, 0};
  for (int k = 0; k <= 40; k++) {
    if (k <= 20) grow(&s, 1); /* grows, then holds */
    sample(250);
  }
  srv_growth_t g = growth_of("unit.half");
  assert_true(g.bytes_per_s > 0);
  assert_false(g.steady);
  drop(&s);
}

static void a_flat_site_has_no_growth(void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.flat"), {0}, 0};
  grow(&s, 5);
  for (int k = 0; k <= 40; k++) sample(250);
  srv_growth_t g = growth_of("unit.flat");
  assert_true(g.window_s == 10.0);
  assert_true(g.bytes_per_s == 0);
  assert_false(g.steady);
  drop(&s);
}

static void growth_over_less_than_four_seconds_is_never_steady(void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.short"), {0}, 0};
  for (int k = 0; k <= 12; k++) { /* 3 s */
    grow(&s, 1);
    sample(250);
  }
  srv_growth_t g = growth_of("unit.short");
  assert_true(g.window_s == 3.0);
  assert_true(g.bytes_per_s == 4000.0);
  assert_false(g.steady);
  drop(&s);
}

static void growth_is_judged_on_the_last_minute_only(void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.old"), {0}, 0};
  for (int k = 0; k < 60; k++) { /* a minute of growth, a second apart */
    grow(&s, 1);
    sample(1000);
  }
  for (int k = 0; k <= 80; k++) sample(1000); /* then 80 s flat */
  srv_growth_t g = growth_of("unit.old");
  assert_true(g.window_s <= 60.0 && g.window_s >= 59.0);
  assert_true(g.bytes_per_s == 0);
  assert_false(g.steady);
  drop(&s);
}

static void a_site_with_a_single_point_has_no_growth(void **state) {
  (void)state;
  srv_growth_t g;
  memset(&g, 0xff, sizeof g);
  srv_hist_growth(SRV_SITES_MAX, &g); /* past the table */
  assert_true(g.window_s == 0 && g.bytes_per_s == 0 && !g.steady);
  site_t s = {LAB_SITE("unit.one"), {0}, 0};
  grow(&s, 3);
  sample(250); /* its only point in the last minute */
  memset(&g, 0xff, sizeof g);
  g = growth_of("unit.one");
  assert_true(g.window_s == 0 && g.bytes_per_s == 0 && !g.steady);
  drop(&s);
}

/* The module's invariant: a site's live-since time follows its blocks:
 * set when it goes from none to some, cleared when they are all freed. */
static void a_site_is_live_since_its_first_block_until_its_last_goes(
    void **state) {
  (void)state;
  site_t s = {LAB_SITE("unit.since"), {0}, 0};
  grow(&s, 2);
  uint64_t t = fake_ms;
  sample(250);
  int i = srv_hist_site_find("unit.since");
  assert_true(i >= 0);
  assert_int_equal(srv_hist_live_since((unsigned)i), t);
  grow(&s, 1);
  sample(250);
  assert_int_equal(srv_hist_live_since((unsigned)i), t);
  drop(&s);
  sample(250);
  assert_int_equal(srv_hist_live_since((unsigned)i), 0);
}

#define T(fn) cmocka_unit_test_setup(fn, later)
static const struct CMUnitTest tests[] = {
    T(a_sample_records_the_time_and_the_heap),
    T(only_the_serving_worker_writes_samples),
    T(a_site_growing_every_quarter_grows_steadily),
    T(a_site_that_shrinks_in_one_quarter_is_not_steady),
    T(a_site_growing_in_only_half_the_quarters_is_not_steady),
    T(a_flat_site_has_no_growth),
    T(growth_over_less_than_four_seconds_is_never_steady),
    T(growth_is_judged_on_the_last_minute_only),
    T(a_site_with_a_single_point_has_no_growth),
    T(a_site_is_live_since_its_first_block_until_its_last_goes),
};

int main(void) {
  return cmocka_run_group_tests_name("hist", tests, start, stop);
}

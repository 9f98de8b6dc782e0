/* core/counters: lifetime counters in the shared region, registered by
 * name by the module that owns them and listed by the observer. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/counters.h"
#include "core/err.h"
#include "core/shm.h"
#include "unit.h"

static int fresh_region(void **state) {
  (void)state;
  if (srv_shm_create(1 << 16) || srv_counters_setup()) return -1;
  return 0;
}

static int destroy_region(void **state) {
  (void)state;
  srv_shm_destroy();
  return 0;
}

/* Static names, as the registry keeps the pointers. */
static const char *const names[SRV_COUNTERS_MAX + 1] = {
    "c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08",
    "c09", "c10", "c11", "c12", "c13", "c14", "c15", "c16", "c17",
    "c18", "c19", "c20", "c21", "c22", "c23", "c24", "c25", "c26",
    "c27", "c28", "c29", "c30", "c31", "c32"};

static void a_registered_counter_counts_and_is_listed_with_its_help(
    void **state) {
  (void)state;
  srv_counter_t *c = srv_counters_add("requests", "requests answered");
  assert_non_null(c);
  assert_int_equal(srv_counters_count(), 1);
  assert_string_equal(srv_counters_name(0), "requests");
  assert_string_equal(srv_counters_help(0), "requests answered");
  srv_counter_add(c, 3);
  srv_counter_add(c, 4);
  assert_int_equal(srv_counter_get(c), 7);
  assert_int_equal(srv_counters_value(0), 7);
}

static void registering_a_name_twice_returns_the_same_word(void **state) {
  (void)state;
  srv_counter_t *a = srv_counters_add("recycles", "first help");
  srv_counter_t *other = srv_counters_add("crashes", "x");
  srv_counter_t *b = srv_counters_add("recycles", "second help");
  assert_non_null(a);
  assert_ptr_equal(a, b);
  assert_ptr_not_equal(a, other);
  assert_int_equal(srv_counters_count(), 2);
  assert_string_equal(srv_counters_help(0), "first help");
}

static void the_region_holds_at_most_counters_max_counters(void **state) {
  (void)state;
  srv_counter_t *first = NULL;
  for (int i = 0; i < SRV_COUNTERS_MAX; i++) {
    srv_counter_t *c = srv_counters_add(names[i], "help");
    assert_non_null(c);
    if (!i) first = c;
  }
  assert_int_equal(srv_counters_count(), SRV_COUNTERS_MAX);
  assert_null(srv_counters_add(names[SRV_COUNTERS_MAX], "one too many"));
  assert_int_equal(srv_counters_count(), SRV_COUNTERS_MAX);
  /* A name already there is still found when the table is full. */
  assert_ptr_equal(srv_counters_add(names[0], "help"), first);
}

static void counters_are_distinct_words(void **state) {
  (void)state;
  srv_counter_t *c[SRV_COUNTERS_MAX];
  for (int i = 0; i < SRV_COUNTERS_MAX; i++) c[i] = srv_counters_add(names[i], "");
  for (int i = 0; i < SRV_COUNTERS_MAX; i++) srv_counter_add(c[i], (uint64_t)i + 1);
  for (int i = 0; i < SRV_COUNTERS_MAX; i++)
    assert_int_equal(srv_counters_value((size_t)i), (uint64_t)i + 1);
}

static void an_index_past_the_end_reads_as_empty(void **state) {
  (void)state;
  srv_counters_add("one", "h");
  assert_string_equal(srv_counters_name(1), "");
  assert_string_equal(srv_counters_help(99), "");
  assert_int_equal(srv_counters_value(1), 0);
}

static void a_counter_that_is_not_registered_counts_nothing(void **state) {
  (void)state;
  srv_shm_destroy();
  /* A region too small for the counters' block: set-up fails... */
  assert_int_equal(srv_shm_create(64), SRV_OK);
  assert_int_equal(srv_counters_setup(), SRV_ENOMEM);
  /* ...and the add is refused... */
  assert_null(srv_counters_add("x", "h"));
  /* ...and NULL is safe to bump and read. */
  srv_counter_add(NULL, 5);
  assert_int_equal(srv_counter_get(NULL), 0);
}

static void counts_made_in_a_child_process_outlive_it(void **state) {
  (void)state;
  srv_counter_t *c = srv_counters_add("shared", "h");
  /* A worker counts and exits; the supervisor still reads its counts. */
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    srv_counter_add(c, 11);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_int_equal(srv_counter_get(c), 11);
}

/* The module's invariant: set-up in a new region starts from no counter. */
static void setup_in_a_new_region_starts_with_no_counter(void **state) {
  (void)state;
  srv_counter_t *c = srv_counters_add("old", "h");
  srv_counter_add(c, 1);
  srv_shm_destroy();
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  assert_int_equal(srv_counters_setup(), SRV_OK);
  assert_int_equal(srv_counters_count(), 0);
  srv_counter_t *d = srv_counters_add("old", "h");
  assert_int_equal(srv_counter_get(d), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fresh_region, destroy_region)
static const struct CMUnitTest tests[] = {
    T(a_registered_counter_counts_and_is_listed_with_its_help),
    T(registering_a_name_twice_returns_the_same_word),
    T(the_region_holds_at_most_counters_max_counters),
    T(counters_are_distinct_words),
    T(an_index_past_the_end_reads_as_empty),
    T(a_counter_that_is_not_registered_counts_nothing),
    T(counts_made_in_a_child_process_outlive_it),
    T(setup_in_a_new_region_starts_with_no_counter),
};

UNIT_MAIN("counters", tests)

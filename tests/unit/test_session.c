/* app/session: the session cache behind /session, bounded by an LRU to
 * SRV_SESSION_CAP entries (the fix for its logical leak) unless the
 * session.unbounded_cache fault skips the eviction. */
#include <stdbool.h>
#include <stdio.h>

#include "app/session.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/parse.h"
#include "unit.h"

#define CAP SRV_SESSION_CAP

static int start_heap(void **state) {
  (void)state;
  return lab_init(NULL) == LAB_OK ? 0 : -1;
}

static int clear(void **state) {
  (void)state;
  srv_session_clear();
  return 0;
}

static srv_session_view_t ids[CAP + 200];

/* Create n sessions into ids[0..n), bounded or not. */
static void create(size_t n, bool unbounded) {
  for (size_t i = 0; i < n; i++)
    assert_int_equal(srv_session_create("ada", unbounded, &ids[i]), SRV_OK);
}

static bool exists(const srv_session_view_t *v) {
  srv_session_view_t out;
  return srv_session_get(v->id, &out);
}

static void creating_ten_more_than_the_cap_keeps_the_cap(void **state) {
  (void)state;
  create(CAP + 10, false);
  assert_int_equal(srv_session_count(), CAP);
}

static void the_least_recently_used_session_is_evicted_first(void **state) {
  (void)state;
  create(CAP + 3, false);
  /* Checked newest first, as each hit refreshes the one it finds. */
  for (size_t i = CAP + 3; i-- > 3;) assert_true(exists(&ids[i]));
  for (size_t i = 0; i < 3; i++) assert_false(exists(&ids[i]));
}

static void a_session_looked_up_outlives_older_untouched_ones(void **state) {
  (void)state;
  create(CAP, false);
  srv_session_view_t v;
  assert_true(srv_session_get(ids[0].id, &v)); /* the oldest, now fresh */
  srv_session_view_t extra;
  assert_int_equal(srv_session_create("bob", false, &extra), SRV_OK);
  assert_int_equal(srv_session_count(), CAP);
  assert_true(exists(&ids[0]));
  assert_false(exists(&ids[1])); /* the least recently used instead */
  assert_true(exists(&extra));
}

static void unbounded_sessions_grow_past_the_cap(void **state) {
  (void)state;
  create(CAP + 150, true);
  assert_int_equal(srv_session_count(), CAP + 150);
  for (size_t i = 0; i < CAP + 150; i++) assert_true(exists(&ids[i]));
}

static void a_bounded_create_after_unbounded_ones_evicts_down_to_the_cap(
    void **state) {
  (void)state;
  create(CAP + 50, true);
  srv_session_view_t v;
  assert_int_equal(srv_session_create("eve", false, &v), SRV_OK);
  assert_int_equal(srv_session_count(), CAP);
  assert_true(exists(&v));
  assert_false(exists(&ids[50]));
}

static void a_lookup_counts_its_hits_and_returns_the_session(void **state) {
  (void)state;
  uint64_t before = srv_clock_now_ms();
  srv_session_view_t made, v;
  assert_int_equal(srv_session_create("grace", false, &made), SRV_OK);
  assert_int_equal(made.hits, 0);
  assert_int_equal(strlen(made.id), SRV_SESSION_ID_LEN);
  assert_int_equal(strspn(made.id, "0123456789abcdef"), SRV_SESSION_ID_LEN);
  assert_string_equal(made.user, "grace");
  assert_true(made.created_ms >= before && made.created_ms <= srv_clock_now_ms());
  for (uint32_t k = 1; k <= 3; k++) {
    assert_true(srv_session_get(made.id, &v));
    assert_int_equal(v.hits, k);
  }
  assert_string_equal(v.id, made.id);
  assert_string_equal(v.user, "grace");
  assert_int_equal(v.created_ms, made.created_ms);
}

static void an_unknown_id_is_not_found(void **state) {
  (void)state;
  srv_session_view_t v;
  assert_false(srv_session_get("0123456789abcdef0123456789abcdef", &v));
  create(5, false);
  assert_false(srv_session_get("0123456789abcdef0123456789abcdef", &v));
  assert_false(srv_session_get("", &v));
  char prefix[SRV_SESSION_ID_LEN];
  memcpy(prefix, ids[0].id, SRV_SESSION_ID_LEN - 1);
  prefix[SRV_SESSION_ID_LEN - 1] = '\0';
  assert_false(srv_session_get(prefix, &v));
}

static void sessions_get_distinct_ids(void **state) {
  (void)state;
  create(CAP, false);
  for (size_t i = 0; i < CAP; i++)
    for (size_t k = i + 1; k < CAP; k++)
      assert_string_not_equal(ids[i].id, ids[k].id);
}

static void a_session_without_a_user_belongs_to_guest(void **state) {
  (void)state;
  srv_session_view_t v;
  assert_int_equal(srv_session_create("", false, &v), SRV_OK);
  assert_string_equal(v.user, "guest");
  assert_int_equal(srv_session_create(NULL, false, &v), SRV_OK);
  assert_string_equal(v.user, "guest");
}

static void a_long_user_name_is_cut_on_a_character_boundary(void **state) {
  (void)state;
  char name[64];
  memset(name, 'a', 30);
  strcpy(name + 30, "\xc3\xa9");
  srv_session_view_t v;
  assert_int_equal(srv_session_create(name, false, &v), SRV_OK);
  /* 30 + 2 bytes and the NUL do not fit in user[32]: the e-acute goes. */
  assert_int_equal(strlen(v.user), 30);
  char check[64];
  assert_int_equal(srv_parse_utf8(check, sizeof check, v.user, strlen(v.user)),
                   strlen(v.user));
  assert_string_equal(check, v.user); /* valid UTF-8: nothing replaced */
  memset(name, 'b', 63);
  name[63] = '\0';
  assert_int_equal(srv_session_create(name, false, &v), SRV_OK);
  assert_int_equal(strlen(v.user), sizeof v.user - 1);
}

static void a_session_outlives_the_request_scope_it_was_made_in(
    void **state) {
  (void)state;
  lab_scope_t *s = lab_scope_open("unit.session_request");
  assert_non_null(s);
  srv_session_view_t v;
  assert_int_equal(srv_session_create("ada", false, &v), SRV_OK);
  lab_scope_report_t r;
  lab_scope_close(s, LAB_SCOPE_RECLAIM, &r);
  assert_int_equal(r.blocks, 0); /* nothing of the cache was reclaimed */
  srv_session_view_t again;
  assert_true(srv_session_get(v.id, &again));
  assert_string_equal(again.user, "ada");
}

static void settle(void) {
  lab_flush_quarantine();
  lab_trim();
}

#define OOM_SESSIONS 20000

static void a_failed_allocation_refuses_one_session_and_leaks_nothing(
    void **state) {
  (void)state;
  settle();
  uint64_t live0 = unit_live_blocks();
  int failed_runs = 0;
  for (uint64_t n = 1;; n++) {
    uint64_t injected = lab_debug_os_failures();
    size_t refused = 0, made = 0;
    srv_session_view_t v;
    lab_debug_fail_os_at(n);
    for (size_t i = 0; i < OOM_SESSIONS; i++) {
      int err = srv_session_create("oom", true, &v);
      if (err) assert_int_equal(err, SRV_ENOMEM);
      if (err) refused++;
      else made++;
    }
    lab_debug_fail_os_at(0);
    bool hit = lab_debug_os_failures() != injected;
    /* One injected failure refuses one session, no more, no less. */
    assert_int_equal(refused, hit ? 1 : 0);
    assert_int_equal(srv_session_count(), made);
    srv_session_clear();
    settle();
    assert_int_equal(unit_live_blocks(), live0);
    if (!hit) break;
    failed_runs++;
    assert_true(n < 100);
  }
  assert_true(failed_runs >= 2);
}

/* The module's invariant: clearing the cache gives back every block. */
static void clearing_the_cache_frees_every_entry_and_the_table(void **state) {
  (void)state;
  srv_session_clear();
  uint64_t live0 = unit_live_blocks();
  create(CAP + 150, true);
  assert_true(unit_live_blocks() > live0 + CAP);
  srv_session_clear();
  assert_int_equal(srv_session_count(), 0);
  assert_int_equal(unit_live_blocks(), live0);
  srv_session_view_t v;
  assert_false(exists(&ids[0]));
  /* And the cache works again after it. */
  assert_int_equal(srv_session_create("ada", false, &v), SRV_OK);
  assert_int_equal(srv_session_count(), 1);
  srv_session_clear();
  assert_int_equal(unit_live_blocks(), live0);
}

#define T(fn) cmocka_unit_test_teardown(fn, clear)
static const struct CMUnitTest tests[] = {
    T(creating_ten_more_than_the_cap_keeps_the_cap),
    T(the_least_recently_used_session_is_evicted_first),
    T(a_session_looked_up_outlives_older_untouched_ones),
    T(unbounded_sessions_grow_past_the_cap),
    T(a_bounded_create_after_unbounded_ones_evicts_down_to_the_cap),
    T(a_lookup_counts_its_hits_and_returns_the_session),
    T(an_unknown_id_is_not_found),
    T(sessions_get_distinct_ids),
    T(a_session_without_a_user_belongs_to_guest),
    T(a_long_user_name_is_cut_on_a_character_boundary),
    T(a_session_outlives_the_request_scope_it_was_made_in),
    T(a_failed_allocation_refuses_one_session_and_leaks_nothing),
    T(clearing_the_cache_frees_every_entry_and_the_table),
};

int main(void) {
  return cmocka_run_group_tests_name("session", tests, start_heap, NULL);
}

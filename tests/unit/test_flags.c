/* observe/flags: the fault and guard flags. Registering, parsing one value
 * per type, a request's changes taken all or nothing with a message that
 * names the flag, and setting them in the shared region.
 *
 * Set-up: values live in the region (srv_flags_setup), and setting or
 * resetting them logs an event (srv_events_setup), whose generation is
 * read from the workers' block (srv_workers_setup). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <lab/cjson.h>

#include "core/err.h"
#include "core/json.h"
#include "core/shm.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/workers.h"
#include "unit.h"

enum { RATE, BOOL, BYTES, REQS, NFLAGS };

static const srv_flag_def_t defs[NFLAGS] = {
    {"echo.leak_tree", SRV_FLAG_RATE, 0, "leaks the tree", "a leak"},
    {"guard.scope", SRV_FLAG_BOOL, 1, "frees what a request left", NULL},
    {"guard.budget_bytes", SRV_FLAG_BYTES, 0, "a memory budget", NULL},
    {"guard.recycle_requests", SRV_FLAG_REQUESTS, 500, "recycle after", NULL},
};

static int setup(void **state) {
  (void)state;
  if (srv_shm_create(1 << 22) || srv_workers_setup() || srv_flags_setup() ||
      srv_events_setup())
    return -1;
  srv_flag_t first;
  if (srv_flags_register(defs, NFLAGS, &first) || first != 0) return -1;
  lab_cjson_install();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  srv_flags_unregister_all();
  srv_shm_destroy();
  return 0;
}

/* ---- the registry ---- */

static void registered_flags_are_found_by_name_with_their_defaults(
    void **state) {
  (void)state;
  assert_int_equal(srv_flags_count(), NFLAGS);
  assert_int_equal(srv_flags_find("guard.budget_bytes"), BYTES);
  assert_int_equal(srv_flags_find("echo.leak_tree"), RATE);
  assert_int_equal(srv_flags_find("echo.leak"), SRV_ENOENT);
  assert_int_equal(srv_flags_find(""), SRV_ENOENT);
  assert_int_equal(srv_flags_find(NULL), SRV_ENOENT);
  assert_true(srv_flags_get(BOOL) == 1.0);
  assert_true(srv_flags_on(BOOL));
  assert_false(srv_flags_on(RATE));
  assert_int_equal(srv_flags_u64(REQS), 500);
  assert_true(srv_flags_default(REQS) == 500);
}

static void a_flag_describes_its_kind_type_and_mistake(void **state) {
  (void)state;
  assert_string_equal(srv_flags_name(RATE), "echo.leak_tree");
  assert_string_equal(srv_flags_kind(RATE), "fault");
  assert_string_equal(srv_flags_kind(BYTES), "guard");
  assert_string_equal(srv_flags_type_name(RATE), "rate");
  assert_string_equal(srv_flags_type_name(BOOL), "bool");
  assert_string_equal(srv_flags_type_name(BYTES), "bytes");
  assert_string_equal(srv_flags_type_name(REQS), "requests");
  assert_int_equal(srv_flags_type(REQS), SRV_FLAG_REQUESTS);
  assert_string_equal(srv_flags_desc(BOOL), "frees what a request left");
  assert_string_equal(srv_flags_mistake(RATE), "a leak");
  assert_null(srv_flags_mistake(BOOL));
}

static void a_batch_with_a_taken_name_is_refused_whole(void **state) {
  (void)state;
  static const srv_flag_def_t more[] = {
      {"new.one", SRV_FLAG_RATE, 0, "", ""},
      {"guard.scope", SRV_FLAG_BOOL, 0, "", NULL},
  };
  srv_flag_t first = -7;
  assert_int_equal(srv_flags_register(more, 2, &first), SRV_EINVAL);
  assert_int_equal(first, -7);
  assert_int_equal(srv_flags_count(), NFLAGS);
  assert_int_equal(srv_flags_find("new.one"), SRV_ENOENT);
}

/* A table that names a flag twice is refused whole: the second copy
 * could never be found or set (registration once checked names only
 * against the flags already registered). */
static void a_name_repeated_within_one_batch_is_refused(void **state) {
  (void)state;
  static const srv_flag_def_t twice[] = {
      {"dup.flag", SRV_FLAG_RATE, 0, "", ""},
      {"dup.flag", SRV_FLAG_BOOL, 0, "", NULL},
  };
  assert_int_equal(srv_flags_register(twice, 2, NULL), SRV_EINVAL);
  assert_int_equal(srv_flags_count(), NFLAGS);
}

static void the_registry_holds_at_most_flags_max(void **state) {
  (void)state;
  static char names[SRV_FLAGS_MAX][16];
  static srv_flag_def_t many[SRV_FLAGS_MAX];
  int room = SRV_FLAGS_MAX - NFLAGS;
  for (int i = 0; i <= room; i++) {
    snprintf(names[i], sizeof names[i], "f.%d", i);
    many[i] = (srv_flag_def_t){names[i], SRV_FLAG_RATE, 0, "", ""};
  }
  assert_int_equal(srv_flags_register(many, room + 1, NULL), SRV_E2BIG);
  assert_int_equal(srv_flags_count(), NFLAGS);
  srv_flag_t first;
  assert_int_equal(srv_flags_register(many, room, &first), SRV_OK);
  assert_int_equal(first, NFLAGS);
  assert_int_equal(srv_flags_count(), SRV_FLAGS_MAX);
  assert_int_equal(srv_flags_register(&many[room], 1, NULL), SRV_E2BIG);
}

/* ---- one value as text ---- */

/* Parse text for f: the error code, the value in *v, the message in why. */
static char why[200];
static int text(srv_flag_t f, const char *s, double *v) {
  why[0] = '\0';
  *v = -99;
  return srv_flags_parse_text(f, s, v, why, sizeof why);
}

static void a_rate_takes_zero_to_one_or_true_and_false(void **state) {
  (void)state;
  double v;
  assert_int_equal(text(RATE, "0", &v), SRV_OK);
  assert_true(v == 0);
  assert_int_equal(text(RATE, "0.25", &v), SRV_OK);
  assert_true(v == 0.25);
  assert_int_equal(text(RATE, "1", &v), SRV_OK);
  assert_true(v == 1);
  assert_int_equal(text(RATE, "true", &v), SRV_OK);
  assert_true(v == 1);
  assert_int_equal(text(RATE, "false", &v), SRV_OK);
  assert_true(v == 0);
  assert_int_equal(text(RATE, "-0", &v), SRV_OK);
  assert_false(signbit(v)); /* -0 is stored as 0 */
}

static void a_rate_outside_zero_to_one_is_out_of_range_naming_the_flag(
    void **state) {
  (void)state;
  double v;
  const char *bad[] = {"1.5", "-0.1", "2", "nan", "inf", "1e9"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(text(RATE, bad[i], &v), SRV_ERANGE);
    assert_non_null(strstr(why, "'echo.leak_tree'"));
    assert_non_null(strstr(why, "out of range"));
    assert_true(v == -99); /* *out untouched */
  }
}

static void a_rate_that_is_not_a_number_is_the_wrong_type(void **state) {
  (void)state;
  double v;
  const char *bad[] = {"", "abc", " 0.5", "0.5 ", "0.5x", "True", "yes"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(text(RATE, bad[i], &v), SRV_EINVAL);
    assert_non_null(strstr(why, "wrong type of value for flag 'echo.leak_tree'"));
  }
  assert_int_equal(text(RATE, NULL, &v), SRV_EINVAL);
}

static void a_bool_takes_true_false_one_or_zero_only(void **state) {
  (void)state;
  double v;
  assert_int_equal(text(BOOL, "true", &v), SRV_OK);
  assert_true(v == 1);
  assert_int_equal(text(BOOL, "0", &v), SRV_OK);
  assert_true(v == 0);
  assert_int_equal(text(BOOL, "1", &v), SRV_OK);
  assert_true(v == 1);
  assert_int_equal(text(BOOL, "0.5", &v), SRV_EINVAL);
  assert_non_null(strstr(why, "'guard.scope'"));
  assert_non_null(strstr(why, "true or false"));
  assert_int_equal(text(BOOL, "2", &v), SRV_EINVAL);
  assert_int_equal(text(BOOL, "on", &v), SRV_EINVAL);
}

static void bytes_take_a_whole_number_with_a_binary_suffix(void **state) {
  (void)state;
  struct {
    const char *in;
    double want;
  } ok[] = {
      {"0", 0},          {"512", 512},           {"64k", 65536},
      {"64K", 65536},    {"64M", 64 << 20},      {"64MiB", 64 << 20},
      {"2MB", 2 << 20},  {"1G", 1 << 30},        {"3g", 3.0 * (1 << 30)},
      {"007", 7},
  };
  double v;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    assert_int_equal(text(BYTES, ok[i].in, &v), SRV_OK);
    assert_true(v == ok[i].want);
  }
  const char *bad[] = {"1T", "1.5M", "-1", "k", "1kb", "1Mi", "1 M",
                       " 1",  "1 ",   "true", "0x10", "1e3", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(text(BYTES, bad[i], &v), SRV_EINVAL);
    assert_non_null(strstr(why, "'guard.budget_bytes'"));
  }
}

static void bytes_stop_at_two_to_the_53_with_or_without_a_suffix(
    void **state) {
  (void)state;
  double v;
  assert_int_equal(text(BYTES, "9007199254740992", &v), SRV_OK);
  assert_true(v == 9007199254740992.0);
  /* One more would round to 2^53 as a double: refused, not rounded. */
  assert_int_equal(text(BYTES, "9007199254740993", &v), SRV_ERANGE);
  assert_non_null(strstr(why, "out of range for flag 'guard.budget_bytes'"));
  assert_int_equal(text(BYTES, "8796093022208k", &v), SRV_OK); /* 2^53 */
  assert_int_equal(text(BYTES, "8796093022209k", &v), SRV_ERANGE);
  assert_int_equal(text(BYTES, "8388608G", &v), SRV_OK); /* 2^53 */
  assert_int_equal(text(BYTES, "8388609G", &v), SRV_ERANGE);
  /* Past what 64 bits hold, and a suffix that would wrap them. */
  assert_int_equal(text(BYTES, "18446744073709551616", &v), SRV_ERANGE);
  assert_int_equal(text(BYTES, "17179869184G", &v), SRV_ERANGE);
}

static void requests_take_a_whole_number_without_suffix(void **state) {
  (void)state;
  double v;
  assert_int_equal(text(REQS, "1000", &v), SRV_OK);
  assert_true(v == 1000);
  assert_int_equal(text(REQS, "0", &v), SRV_OK);
  assert_int_equal(text(REQS, "1k", &v), SRV_EINVAL);
  assert_non_null(strstr(why, "'guard.recycle_requests'"));
  assert_non_null(strstr(why, "requests"));
  assert_int_equal(text(REQS, "1.0", &v), SRV_EINVAL);
  assert_int_equal(text(REQS, "-5", &v), SRV_EINVAL);
  assert_int_equal(text(REQS, "false", &v), SRV_EINVAL);
  assert_int_equal(text(REQS, "9007199254740993", &v), SRV_ERANGE);
}

/* ---- one value as JSON ---- */

static int json(srv_flag_t f, const char *s, double *v) {
  cJSON *item = cJSON_Parse(s);
  assert_non_null(item);
  why[0] = '\0';
  *v = -99;
  int err = srv_flags_parse_json(f, item, v, why, sizeof why);
  cJSON_Delete(item);
  return err;
}

static void json_values_follow_the_same_rules_per_type(void **state) {
  (void)state;
  double v;
  assert_int_equal(json(RATE, "0.5", &v), SRV_OK);
  assert_true(v == 0.5);
  assert_int_equal(json(RATE, "true", &v), SRV_OK);
  assert_true(v == 1);
  assert_int_equal(json(RATE, "1.01", &v), SRV_ERANGE);
  assert_int_equal(json(RATE, "\"0.5\"", &v), SRV_EINVAL);
  assert_int_equal(json(RATE, "null", &v), SRV_EINVAL);
  assert_int_equal(json(RATE, "[0.5]", &v), SRV_EINVAL);

  assert_int_equal(json(BOOL, "false", &v), SRV_OK);
  assert_true(v == 0);
  assert_int_equal(json(BOOL, "1", &v), SRV_OK);
  assert_int_equal(json(BOOL, "0.5", &v), SRV_EINVAL);

  assert_int_equal(json(BYTES, "1048576", &v), SRV_OK);
  assert_true(v == 1048576);
  assert_int_equal(json(BYTES, "-0", &v), SRV_OK);
  assert_false(signbit(v));
  assert_int_equal(json(BYTES, "true", &v), SRV_EINVAL);
  assert_int_equal(json(BYTES, "\"64M\"", &v), SRV_EINVAL);
  assert_int_equal(json(BYTES, "1.5", &v), SRV_EINVAL);
  assert_int_equal(json(BYTES, "-1", &v), SRV_ERANGE);
  assert_int_equal(json(BYTES, "1e300", &v), SRV_ERANGE);
  assert_non_null(strstr(why, "'guard.budget_bytes'"));
  assert_int_equal(json(BYTES, "9007199254740992", &v), SRV_OK);

  assert_int_equal(json(REQS, "250", &v), SRV_OK);
  assert_int_equal(json(REQS, "false", &v), SRV_EINVAL);
  assert_non_null(strstr(why, "'guard.recycle_requests'"));
}

/* ---- a request's changes ---- */

static srv_flags_change_t c;

static int query(const char *q) { return srv_flags_parse_query(q, strlen(q), &c); }
static int patch(const char *b) { return srv_flags_parse_patch(b, strlen(b), &c); }

static void a_query_of_valid_changes_is_taken_in_order(void **state) {
  (void)state;
  assert_int_equal(query("echo.leak_tree=0.5&guard.scope=false&"
                         "guard.budget_bytes=64M&echo.leak_tree=1"),
                   SRV_OK);
  assert_int_equal(c.n, 4);
  assert_int_equal(c.ids[0], RATE);
  assert_true(c.values[0] == 0.5);
  assert_int_equal(c.ids[1], BOOL);
  assert_true(c.values[1] == 0);
  assert_true(c.values[2] == 64 << 20);
  assert_int_equal(c.ids[3], RATE); /* named twice: both kept, in order */
  assert_true(c.values[3] == 1);
  assert_string_equal(c.why, "");
  assert_string_equal(c.flag, "");
  assert_int_equal(query(""), SRV_OK);
  assert_int_equal(c.n, 0);
}

static void url_encoded_names_and_values_are_decoded(void **state) {
  (void)state;
  assert_int_equal(query("echo%2Eleak_tree=%30.5&guard.budget_bytes=1%4B"),
                   SRV_OK);
  assert_int_equal(c.n, 2);
  assert_true(c.values[0] == 0.5);
  assert_true(c.values[1] == 1024);
}

static void one_bad_change_in_a_query_takes_none_and_names_the_flag(
    void **state) {
  (void)state;
  assert_int_equal(query("echo.leak_tree=0.5&guard.scope=maybe"), SRV_EINVAL);
  assert_int_equal(c.n, 0);
  assert_string_equal(c.flag, "guard.scope");
  assert_non_null(strstr(c.why, "'guard.scope'"));

  assert_int_equal(query("guard.scope=1&echo.leak_tree=3"), SRV_ERANGE);
  assert_int_equal(c.n, 0);
  assert_string_equal(c.flag, "echo.leak_tree");
  assert_non_null(strstr(c.why, "out of range"));

  assert_int_equal(query("guard.scope=1&no.such=1&echo.leak_tree=1"),
                   SRV_ENOENT);
  assert_int_equal(c.n, 0);
  assert_string_equal(c.flag, "no.such");
  assert_string_equal(c.why, "unknown flag 'no.such'");
}

static void a_query_flag_without_a_value_is_the_wrong_type(void **state) {
  (void)state;
  assert_int_equal(query("guard.scope"), SRV_EINVAL);
  assert_int_equal(c.n, 0);
  assert_string_equal(c.flag, "guard.scope");
}

static void nul_bytes_in_a_query_are_refused(void **state) {
  (void)state;
  assert_int_equal(srv_flags_parse_query("guard.scope=1\0", 14, &c), SRV_EINVAL);
  assert_int_equal(c.n, 0);
  assert_string_equal(c.why, "a NUL byte in the query string");
  assert_string_equal(c.flag, "");
  /* Encoded: inside a value it is the wrong type, inside a name unknown. */
  assert_int_equal(query("guard.scope=1%00"), SRV_EINVAL);
  assert_string_equal(c.flag, "guard.scope");
  assert_int_equal(query("guard.scope%00x=1"), SRV_ENOENT);
  assert_string_equal(c.flag, "guard.scope?x");
}

static void more_changes_than_one_request_may_carry_are_refused(
    void **state) {
  (void)state;
  static char q[SRV_FLAGS_MAX_CHANGES * 16 + 32];
  size_t len = 0;
  for (int i = 0; i <= SRV_FLAGS_MAX_CHANGES; i++)
    len += (size_t)snprintf(q + len, sizeof q - len, "%sguard.scope=1",
                            i ? "&" : "");
  assert_int_equal(srv_flags_parse_query(q, len - 14, &c), SRV_OK);
  assert_int_equal(c.n, SRV_FLAGS_MAX_CHANGES);
  assert_int_equal(srv_flags_parse_query(q, len, &c), SRV_E2BIG);
  assert_int_equal(c.n, 0);
  assert_non_null(strstr(c.why, "too many"));
}

static void a_long_unknown_name_is_quoted_cut_on_a_character_boundary(
    void **state) {
  (void)state;
  char q[128];
  memset(q, 'a', 70);
  memcpy(q + 70, "\xc3\xa9=1", 5);
  assert_int_equal(query(q), SRV_ENOENT);
  /* flag[72]: 70 'a' and the whole e-acute do not fit with the NUL. */
  assert_int_equal(strlen(c.flag), 70);
  size_t n = strlen(c.why);
  assert_true(n < sizeof c.why);
  assert_int_not_equal((unsigned char)c.why[n - 2], 0xc3);
  assert_int_equal(c.why[n - 1], '\'');
}

static void a_patch_object_of_valid_changes_is_taken(void **state) {
  (void)state;
  assert_int_equal(patch("{\"echo.leak_tree\": 0.25, \"guard.scope\": true,"
                         " \"guard.recycle_requests\": 10}"),
                   SRV_OK);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.ids[2], REQS);
  assert_true(c.values[0] == 0.25);
  assert_true(c.values[1] == 1);
  assert_true(c.values[2] == 10);
  assert_int_equal(patch("{}"), SRV_OK);
  assert_int_equal(c.n, 0);
}

static void one_bad_member_in_a_patch_takes_none_and_names_the_flag(
    void **state) {
  (void)state;
  assert_int_equal(patch("{\"echo.leak_tree\": 1, \"guard.budget_bytes\": \"1M\"}"),
                   SRV_EINVAL);
  assert_int_equal(c.n, 0);
  assert_string_equal(c.flag, "guard.budget_bytes");
  assert_non_null(strstr(c.why, "wrong type of value for flag 'guard.budget_bytes'"));
  assert_int_equal(patch("{\"guard.scope\": 1, \"nope\": 1}"), SRV_ENOENT);
  assert_string_equal(c.flag, "nope");
  assert_int_equal(patch("{\"echo.leak_tree\": -1}"), SRV_ERANGE);
  assert_string_equal(c.flag, "echo.leak_tree");
}

static void a_patch_that_is_not_one_json_object_is_refused(void **state) {
  (void)state;
  assert_int_equal(patch("[1]"), SRV_EINVAL);
  assert_string_equal(c.why, "expected a JSON object of flag changes");
  assert_int_equal(patch("{\"guard.scope\": 1"), SRV_EINVAL);
  assert_string_equal(c.why, "malformed JSON in the request body");
  assert_int_equal(patch("{\"guard.scope\": 1} {}"), SRV_EINVAL);
  assert_string_equal(c.why, "malformed JSON in the request body");
  assert_int_equal(patch(""), SRV_EINVAL);
  assert_string_equal(c.why, "expected a JSON object of flag changes");
  assert_int_equal(c.n, 0);
  assert_string_equal(c.flag, "");
}

/* ---- values in the region ---- */

typedef struct logged {
  char text[160];
  uint32_t type;
  size_t n;
} logged_t;

static void keep_last(const srv_event_t *ev, void *ctx) {
  logged_t *l = ctx;
  memcpy(l->text, ev->text, sizeof l->text);
  l->type = ev->type;
  l->n++;
}

/* The lifecycle events logged since `after`. */
static logged_t events_since(uint64_t after) {
  logged_t l;
  memset(&l, 0, sizeof l);
  srv_events_lifecycle(after, UINT64_MAX, 100, keep_last, &l);
  return l;
}

static void set_many_applies_every_value_bumps_the_version_and_logs_once(
    void **state) {
  (void)state;
  uint64_t v0 = srv_flags_version(), e0 = srv_events_last();
  assert_int_equal(query("echo.leak_tree=0.5&guard.scope=0&"
                         "guard.budget_bytes=1k"), SRV_OK);
  srv_flags_set_many(c.ids, c.values, c.n);
  assert_true(srv_flags_get(RATE) == 0.5);
  assert_false(srv_flags_on(BOOL));
  assert_int_equal(srv_flags_u64(BYTES), 1024);
  assert_int_equal(srv_flags_version(), v0 + 1);
  logged_t l = events_since(e0);
  assert_int_equal(l.n, 1);
  assert_int_equal(l.type, SRV_EVENT_flags);
  assert_string_equal(l.text, "echo.leak_tree=0.5, guard.scope=0, "
                              "guard.budget_bytes=1024");
}

static void a_long_change_description_ends_in_an_ellipsis(void **state) {
  (void)state;
  srv_flag_t ids[40];
  double values[40];
  for (int i = 0; i < 40; i++) ids[i] = BYTES, values[i] = 1e15 + i;
  uint64_t e0 = srv_events_last();
  srv_flags_set_many(ids, values, 40);
  logged_t l = events_since(e0);
  assert_int_equal(l.n, 1);
  size_t n = strlen(l.text);
  assert_true(n < sizeof l.text);
  assert_string_equal(l.text + n - 4, " ...");
  assert_true(srv_flags_get(BYTES) == 1e15 + 39); /* the last value wins */
}

static void reset_puts_every_flag_back_to_its_default(void **state) {
  (void)state;
  srv_flag_t ids[] = {RATE, BOOL, REQS};
  double values[] = {1, 0, 7};
  srv_flags_set_many(ids, values, 3);
  uint64_t v0 = srv_flags_version(), e0 = srv_events_last();
  srv_flags_reset();
  assert_true(srv_flags_get(RATE) == 0);
  assert_true(srv_flags_get(BOOL) == 1);
  assert_int_equal(srv_flags_u64(REQS), 500);
  assert_int_equal(srv_flags_version(), v0 + 1);
  logged_t l = events_since(e0);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.text, "every flag back to its default");
}

static void a_rate_of_zero_never_hits_and_of_one_always_does(void **state) {
  (void)state;
  for (int i = 0; i < 1000; i++) assert_false(srv_flags_hit(RATE));
  srv_flags_set_many((srv_flag_t[]){RATE}, (double[]){1}, 1);
  for (int i = 0; i < 1000; i++) assert_true(srv_flags_hit(RATE));
  srv_flags_set_many((srv_flag_t[]){RATE}, (double[]){0.5}, 1);
  int hits = 0;
  for (int i = 0; i < 10000; i++) hits += srv_flags_hit(RATE);
  assert_true(hits > 4000 && hits < 6000); /* 20 sigma either way */
}

static void values_are_written_as_json_by_type(void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, LAB_SITE("unit.flags_json"));
  srv_json_obj(&j, NULL);
  srv_flags_value_json(&j, "b", BOOL);
  srv_flags_value_json(&j, "r", REQS);
  srv_flags_value_json(&j, "x", RATE);
  srv_json_end(&j);
  assert_string_equal(j.buf.data, "{\"b\":true,\"r\":500,\"x\":0}");
  srv_buf_free(&j.buf);
}

static void a_value_set_in_a_child_process_outlives_it(void **state) {
  (void)state;
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    srv_flags_set_many((srv_flag_t[]){BYTES}, (double[]){4096}, 1);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(srv_flags_u64(BYTES), 4096);
}

/* The module's invariant: parsing changes, taken or refused, keeps no
 * block on the heap. */
static void parsing_changes_leaves_no_block_behind(void **state) {
  (void)state;
  uint64_t live = unit_live_blocks();
  for (int i = 0; i < 50; i++) {
    query("echo.leak_tree=0.5&guard.scope=1");
    query("echo.leak_tree=0.5&nope=1");
    patch("{\"echo.leak_tree\": 0.5, \"guard.scope\": true}");
    patch("{\"echo.leak_tree\": 0.5, \"guard.scope\": \"x\"}");
    patch("{\"echo.leak_tree\": 0.5} trailing");
    patch("[1,2,3]");
  }
  assert_int_equal(unit_live_blocks(), live);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
static const struct CMUnitTest tests[] = {
    T(registered_flags_are_found_by_name_with_their_defaults),
    T(a_flag_describes_its_kind_type_and_mistake),
    T(a_batch_with_a_taken_name_is_refused_whole),
    T(the_registry_holds_at_most_flags_max),
    T(a_rate_takes_zero_to_one_or_true_and_false),
    T(a_rate_outside_zero_to_one_is_out_of_range_naming_the_flag),
    T(a_rate_that_is_not_a_number_is_the_wrong_type),
    T(a_bool_takes_true_false_one_or_zero_only),
    T(bytes_take_a_whole_number_with_a_binary_suffix),
    T(bytes_stop_at_two_to_the_53_with_or_without_a_suffix),
    T(requests_take_a_whole_number_without_suffix),
    T(json_values_follow_the_same_rules_per_type),
    T(a_query_of_valid_changes_is_taken_in_order),
    T(url_encoded_names_and_values_are_decoded),
    T(one_bad_change_in_a_query_takes_none_and_names_the_flag),
    T(a_query_flag_without_a_value_is_the_wrong_type),
    T(nul_bytes_in_a_query_are_refused),
    T(more_changes_than_one_request_may_carry_are_refused),
    T(a_long_unknown_name_is_quoted_cut_on_a_character_boundary),
    T(a_patch_object_of_valid_changes_is_taken),
    T(one_bad_member_in_a_patch_takes_none_and_names_the_flag),
    T(a_patch_that_is_not_one_json_object_is_refused),
    T(set_many_applies_every_value_bumps_the_version_and_logs_once),
    T(a_long_change_description_ends_in_an_ellipsis),
    T(reset_puts_every_flag_back_to_its_default),
    T(a_rate_of_zero_never_hits_and_of_one_always_does),
    T(values_are_written_as_json_by_type),
    T(a_value_set_in_a_child_process_outlives_it),
    T(parsing_changes_leaves_no_block_behind),
    T(a_name_repeated_within_one_batch_is_refused),
};

UNIT_MAIN("flags", tests)

/* Flags change all or nothing, through PATCH, POST and reset, and only
 * with the admin token when one is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

static srv_t *srv;

static int start(void **state) {
  (void)state;
  srv = srv_start(NULL, NULL);
  return 0;
}

static int stop(void **state) {
  (void)state;
  int rc = srv_stop(srv);
  srv = NULL;
  return rc == 0 ? 0 : -1;
}

/* The current value of a flag, from GET /api/flags. */
static double flag(const char *name) {
  cJSON *doc = http_json(srv, "GET", "/api/flags", NULL, NULL);
  cJSON *f;
  double v = -1;
  cJSON_ArrayForEach(f, jget(doc, "flags")) {
    if (strcmp(jget(f, "name")->valuestring, name)) continue;
    cJSON *val = jget(f, "value");
    v = cJSON_IsBool(val) ? cJSON_IsTrue(val) : val->valuedouble;
  }
  cJSON_Delete(doc);
  return v;
}

/* Send a change and check the status and, for errors, the flag named. */
static void change(const char *method, const char *path, const char *body,
                   long want, const char *bad_flag) {
  http_resp_t r = http(srv, method, path, body, -1, NULL);
  if (r.status != want)
    fail_msg("%s %s %s: want %ld, got %ld: %s", method, path, body ? body : "",
             want, r.status, r.body);
  cJSON *doc = cJSON_Parse(r.body);
  assert_non_null(doc);
  if (want >= 400) {
    assert_true(cJSON_IsString(jget(doc, "error")));
    if (bad_flag) assert_string_equal(jget(doc, "flag")->valuestring, bad_flag);
  }
  cJSON_Delete(doc);
  http_free(&r);
}

static void patch_changes_several_flags_at_once(void **state) {
  (void)state;
  change("PATCH", "/api/flags",
         "{\"echo.leak_tree\": 0.25, \"blob.double_free\": true, "
         "\"guard.request_scope\": true, \"guard.budget_bytes\": 1048576}",
         200, NULL);
  assert_true(flag("echo.leak_tree") == 0.25);
  assert_true(flag("blob.double_free") == 1);
  assert_true(flag("guard.request_scope") == 1);
  assert_true(flag("guard.budget_bytes") == 1048576);
  assert_true(stat_num(srv, "flags/echo.leak_tree") == 0.25);
}

static void patch_with_one_unknown_flag_changes_nothing(void **state) {
  (void)state;
  change("PATCH", "/api/flags", "{\"echo.leak_tree\": 1, \"echo.no_such\": 1}",
         400, "echo.no_such");
  assert_true(flag("echo.leak_tree") == 0);
}

static void patch_with_a_value_of_the_wrong_type_changes_nothing(void **state) {
  (void)state;
  change("PATCH", "/api/flags", "{\"echo.leak_tree\": 1, \"blob.double_free\": \"yes\"}",
         400, "blob.double_free");
  change("PATCH", "/api/flags", "{\"guard.request_scope\": 0.5}", 400,
         "guard.request_scope");
  change("PATCH", "/api/flags", "{\"guard.budget_bytes\": true}", 400,
         "guard.budget_bytes");
  change("PATCH", "/api/flags", "{\"guard.recycle_requests\": 2.5}", 400,
         "guard.recycle_requests");
  change("PATCH", "/api/flags", "{\"echo.leak_tree\": null}", 400, "echo.leak_tree");
  assert_true(flag("echo.leak_tree") == 0);
  assert_true(flag("guard.request_scope") == 0);
}

static void patch_with_a_value_out_of_range_changes_nothing(void **state) {
  (void)state;
  change("PATCH", "/api/flags", "{\"echo.leak_tree\": 1, \"report.uninit\": 1.5}",
         400, "report.uninit");
  change("PATCH", "/api/flags", "{\"report.uninit\": -0.1}", 400, "report.uninit");
  change("PATCH", "/api/flags", "{\"guard.budget_bytes\": -1}", 400,
         "guard.budget_bytes");
  assert_true(flag("echo.leak_tree") == 0);
  assert_true(flag("report.uninit") == 0);
}

static void patch_needs_a_json_object(void **state) {
  (void)state;
  change("PATCH", "/api/flags", "{\"echo.leak_tree\": 1", 400, NULL);
  change("PATCH", "/api/flags", "[\"echo.leak_tree\"]", 400, NULL);
  change("PATCH", "/api/flags", "", 400, NULL);
  assert_true(flag("echo.leak_tree") == 0);
}

static void post_sets_flags_from_the_query_string(void **state) {
  (void)state;
  change("POST", "/api/flags?echo.leak_tree=0.5&hello.free_stack=true"
                 "&guard.budget_bytes=64M&guard.request_scope=1", NULL, 200, NULL);
  assert_true(flag("echo.leak_tree") == 0.5);
  assert_true(flag("hello.free_stack") == 1);
  assert_true(flag("guard.budget_bytes") == 64.0 * 1024 * 1024);
  assert_true(flag("guard.request_scope") == 1);
  change("POST", "/api/flags?hello.free_stack=false", NULL, 200, NULL);
  assert_true(flag("hello.free_stack") == 0);
}

static void post_with_one_bad_value_changes_nothing(void **state) {
  (void)state;
  change("POST", "/api/flags?echo.leak_tree=1&hello.free_stack=maybe", NULL, 400,
         "hello.free_stack");
  change("POST", "/api/flags?echo.leak_tree=1&nope=1", NULL, 400, "nope");
  change("POST", "/api/flags?echo.leak_tree=2", NULL, 400, "echo.leak_tree");
  change("POST", "/api/flags?guard.budget_bytes=12abc", NULL, 400,
         "guard.budget_bytes");
  change("POST", "/api/flags", NULL, 400, NULL);
  assert_true(flag("echo.leak_tree") == 0);
}

static void reset_puts_every_flag_back_to_its_default(void **state) {
  (void)state;
  change("PATCH", "/api/flags", "{\"echo.leak_tree\": 1, \"guard.request_scope\": true}",
         200, NULL);
  change("POST", "/api/flags/reset", NULL, 200, NULL);
  cJSON *doc = http_json(srv, "GET", "/api/flags", NULL, NULL);
  cJSON *f;
  cJSON_ArrayForEach(f, jget(doc, "flags")) {
    cJSON *v = jget(f, "value"), *d = jget(f, "default");
    assert_true(cJSON_Compare(v, d, 1));
  }
  cJSON_Delete(doc);
}

static void every_change_is_logged_as_an_event(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  change("POST", "/api/flags?report.uninit=1", NULL, 200, NULL);
  change("POST", "/api/flags?report.uninit=oops", NULL, 400, NULL);
  char path[64];
  snprintf(path, sizeof path, "/api/events?since=%llu", (unsigned long long)since);
  cJSON *doc = http_json(srv, "GET", path, NULL, NULL);
  cJSON *events = jget(doc, "events");
  assert_int_equal(cJSON_GetArraySize(events), 1);
  cJSON *ev = cJSON_GetArrayItem(events, 0);
  assert_string_equal(jget(ev, "type")->valuestring, "flags");
  assert_non_null(strstr(jget(ev, "message")->valuestring, "report.uninit=1"));
  cJSON_Delete(doc);
}

static void a_rate_of_one_half_makes_about_half_the_requests_leak(void **state) {
  (void)state;
  set_flags(srv, "{\"hello.leak_response\": 1}");
  uint64_t b0 = site_bytes(srv, "hello.response");
  repeat(srv, 1, "GET", "/hello", NULL, 200);
  uint64_t one = site_bytes(srv, "hello.response") - b0;
  set_flags(srv, "{\"hello.leak_response\": 0.5}");
  b0 = site_bytes(srv, "hello.response");
  repeat(srv, 1000, "GET", "/hello", NULL, 200);
  double hits = (double)(site_bytes(srv, "hello.response") - b0) / (double)one;
  assert_true(hits > 400 && hits < 600); /* 500 +- 6.3 sigma */
}

static void with_an_admin_token_changes_need_the_bearer(void **state) {
  (void)state;
  static const char *const args[] = {"--admin-token", "s3cret", NULL};
  srv_t *guarded = srv_start(args, NULL);
  static const char *const wrong[] = {"Authorization: Bearer s3creT", NULL};
  static const char *const longer[] = {"Authorization: Bearer s3cret!", NULL};
  static const char *const basic[] = {"Authorization: Basic s3cret", NULL};
  static const char *const right[] = {"Authorization: Bearer s3cret", NULL};
  const char *body = "{\"echo.leak_tree\": 1}";
  http_resp_t r = http(guarded, "PATCH", "/api/flags", body, -1, NULL);
  assert_int_equal(r.status, 401);
  assert_non_null(strstr(r.body, "\"error\""));
  http_free(&r);
  const char *const *bad[] = {wrong, longer, basic};
  for (int i = 0; i < 3; i++) {
    r = http(guarded, "PATCH", "/api/flags", body, -1, bad[i]);
    assert_int_equal(r.status, 401);
    http_free(&r);
  }
  r = http(guarded, "POST", "/api/flags?echo.leak_tree=1", NULL, 0, NULL);
  assert_int_equal(r.status, 401);
  http_free(&r);
  r = http(guarded, "POST", "/api/flags/reset", NULL, 0, NULL);
  assert_int_equal(r.status, 401);
  http_free(&r);
  r = http(guarded, "GET", "/api/flags", NULL, 0, NULL); /* reading is open */
  assert_int_equal(r.status, 200);
  http_free(&r);
  assert_int_equal(stat_num(guarded, "flags/echo.leak_tree"), 0);
  r = http(guarded, "PATCH", "/api/flags", body, -1, right);
  assert_int_equal(r.status, 200);
  http_free(&r);
  assert_int_equal(stat_num(guarded, "flags/echo.leak_tree"), 1);
  r = http(guarded, "POST", "/api/flags/reset", NULL, 0, right);
  assert_int_equal(r.status, 200);
  http_free(&r);
  assert_int_equal(srv_stop(guarded), 0);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, start, stop)
  const struct CMUnitTest tests[] = {
      T(patch_changes_several_flags_at_once),
      T(patch_with_one_unknown_flag_changes_nothing),
      T(patch_with_a_value_of_the_wrong_type_changes_nothing),
      T(patch_with_a_value_out_of_range_changes_nothing),
      T(patch_needs_a_json_object),
      T(post_sets_flags_from_the_query_string),
      T(post_with_one_bad_value_changes_nothing),
      T(reset_puts_every_flag_back_to_its_default),
      T(every_change_is_logged_as_an_event),
      T(a_rate_of_one_half_makes_about_half_the_requests_leak),
      cmocka_unit_test(with_an_admin_token_changes_need_the_bearer),
  };
  return cmocka_run_group_tests_name("server flags", tests, NULL, NULL);
}

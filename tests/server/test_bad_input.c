/* Bad input gets a JSON error with the right status, and changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

static srv_t *srv;

static int start(void **state) {
  (void)state;
  static const char *const args[] = {"--max-body", "4096", NULL};
  srv = srv_start(args, NULL);
  return 0;
}

/* Group teardown: only if a test failed before the last one stopped it
 * (cmocka does not fail the run on a group teardown's status). */
static int stop(void **state) {
  (void)state;
  if (srv) srv_stop(srv);
  srv = NULL;
  return 0;
}

/* The last test: the server still stops cleanly, with status 0, after
 * everything the others did (a sanitizer's report would change it). */
static void the_server_stops_on_sigterm_with_status_0(void **state) {
  (void)state;
  int rc = srv_stop(srv);
  srv = NULL;
  assert_int_equal(rc, 0);
}

/* Whether s[0..n) is valid UTF-8 (no overlong forms, no surrogates). */
static bool valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
    if (k == 9 || i + k >= n + (k ? 0 : 1)) return false;
    unsigned cp = k == 0 ? c : c & (0x3f >> k);
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    static const unsigned min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += k + 1;
  }
  return true;
}

/* Expect a JSON error document with this status, in valid UTF-8 whatever
 * bytes the request held. */
static void expect_error(const char *method, const char *path, const char *body,
                         long len, const char *const *headers, long want) {
  http_resp_t r = http(srv, method, path, body, len, headers);
  if (r.status != want)
    fail_msg("%s %s: want %ld, got %ld: %.200s", method, path, want, r.status,
             r.body);
  if (!valid_utf8((const unsigned char *)r.body, r.len))
    fail_msg("%s %s: the error is not valid UTF-8", method, path);
  cJSON *doc = cJSON_ParseWithLength(r.body, r.len);
  if (!doc || !cJSON_IsString(jget(doc, "error")))
    fail_msg("%s %s: not a JSON error: %.200s", method, path, r.body);
  assert_true(http_has_header(&r, "Content-Type", "application/json"));
  cJSON_Delete(doc);
  http_free(&r);
}

static void malformed_json_is_a_400(void **state) {
  (void)state;
  static const char *const bodies[] = {"{", "{\"a\":}", "nul", "[1,2", "\"x", "", NULL};
  for (int i = 0; bodies[i]; i++)
    expect_error("POST", "/echo", bodies[i], -1, NULL, 400);
  expect_error("POST", "/session", "{\"user\":", -1, NULL, 400);
  expect_error("POST", "/session", "[]", -1, NULL, 400);
  expect_error("PATCH", "/api/flags", "{\"echo.leak_tree\":", -1, NULL, 400);
}

static void unknown_flags_and_bad_values_are_a_400(void **state) {
  (void)state;
  expect_error("PATCH", "/api/flags", "{\"no.such\": 1}", -1, NULL, 400);
  expect_error("PATCH", "/api/flags", "{\"echo.leak_tree\": \"1\"}", -1, NULL, 400);
  expect_error("PATCH", "/api/flags", "{\"echo.leak_tree\": 7}", -1, NULL, 400);
  expect_error("POST", "/api/flags?echo.leak_tree=", NULL, 0, NULL, 400);
  expect_error("POST", "/api/flags?echo.leak_tree", NULL, 0, NULL, 400);
  assert_int_equal(stat_num(srv, "flags/echo.leak_tree"), 0);
}

static void a_wrong_method_is_a_405_with_allow(void **state) {
  (void)state;
  static const struct {
    const char *method, *path, *allow;
  } cases[] = {
      {"DELETE", "/api/flags", "GET, HEAD, POST, PATCH"},
      {"POST", "/api/stats", "GET, HEAD"},
      {"PUT", "/echo", "GET, HEAD, POST"},
      {"GET", "/api/flags/reset", "POST"},
      {"PATCH", "/blob", "GET, HEAD"},
      {"OPTIONS", "/hello", "GET, HEAD"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    http_resp_t r = http(srv, cases[i].method, cases[i].path, NULL, 0, NULL);
    assert_int_equal(r.status, 405);
    if (!http_has_header(&r, "Allow", cases[i].allow))
      fail_msg("%s %s: no 'Allow: %s' in\n%s", cases[i].method, cases[i].path,
               cases[i].allow, r.headers);
    assert_non_null(strstr(r.body, "\"error\""));
    http_free(&r);
  }
}

static void an_unknown_path_is_a_404(void **state) {
  (void)state;
  expect_error("GET", "/nope", NULL, 0, NULL, 404);
  expect_error("GET", "/api/stats/", NULL, 0, NULL, 404);
  expect_error("GET", "/api", NULL, 0, NULL, 404);
  expect_error("POST", "/api/flags/reset/now", NULL, 0, NULL, 404);
  /* The message quotes the path: bytes that are not UTF-8 become '?'. */
  expect_error("GET", "/caf%c3%ff%fe", NULL, 0, NULL, 404);
}

static void a_body_over_the_limit_is_a_413(void **state) {
  (void)state;
  size_t n = 64 * 1024;
  char *big = malloc(n);
  memset(big, ' ', n);
  big[0] = '[';
  big[n - 1] = ']';
  static const char *const expect[] = {"Expect: 100-continue", NULL};
  expect_error("POST", "/echo", big, (long)n, expect, 413);
  static const char *const chunked[] = {"Transfer-Encoding: chunked", NULL};
  expect_error("POST", "/echo", big, (long)n, chunked, 413);
  expect_error("PATCH", "/api/flags", big, (long)n, expect, 413);
  free(big);
  /* Right at the limit is fine. */
  char ok[4096];
  memset(ok, ' ', sizeof ok);
  ok[0] = '[';
  ok[sizeof ok - 1] = ']';
  http_resp_t r = http(srv, "POST", "/echo", ok, sizeof ok, NULL);
  assert_int_equal(r.status, 200);
  http_free(&r);
  assert_int_equal(stat_num(srv, "requests/by_status/413"), 3);
}

static void garbage_query_strings_are_a_400(void **state) {
  (void)state;
  static const char *const paths[] = {
      "/api/history?since=abc", "/api/history?since=-5", "/api/history?since=1e3",
      "/api/history?limit=0", "/api/leaks?top=", "/api/leaks?top=x1",
      "/api/leaks?top=99999", "/api/events?since=%20", "/api/events?limit=0",
      "/api/stats?x=1", "/healthz?probe", "/metrics?format=json",
      "/blob?size=0", "/blob?size=99999999", "/blob?size=12kb",
      "/report?rows=-1", "/hello?nam=ada", "/api/flags?echo.leak_tree=1",
      "/echo?%ff%fe=1", "/api/stacks?top=0", "/api/stacks?order=up",
      "/api/stacks?top=1&depth=3", NULL};
  for (int i = 0; paths[i]; i++) expect_error("GET", paths[i], NULL, 0, NULL, 400);
  char name[400] = "/hello?name=";
  memset(name + strlen(name), 'a', 300);
  name[sizeof name - 1] = '\0';
  expect_error("GET", name, NULL, 0, NULL, 400);
}

/* A user name longer than a session keeps is cut, on a character
 * boundary: 30 'a' and an 'e' with acute accent (2 bytes) do not fit in
 * 31, and the answer must not end the name in half a character. */
static void a_long_user_name_is_cut_on_a_character_boundary(void **state) {
  (void)state;
  const char *body = "{\"user\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\\u00e9x\"}";
  http_resp_t r = http(srv, "POST", "/session", body, -1, NULL);
  assert_int_equal(r.status, 201);
  assert_true(valid_utf8((const unsigned char *)r.body, r.len));
  cJSON *doc = cJSON_Parse(r.body);
  assert_non_null(doc);
  assert_string_equal(jget(doc, "user")->valuestring,
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  cJSON_Delete(doc);
  http_free(&r);
  /* Raw UTF-8 in the body is cut the same way, and a name that fits
   * keeps its last character whole. */
  body = "{\"user\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9\"}";
  r = http(srv, "POST", "/session", body, -1, NULL);
  assert_int_equal(r.status, 201);
  assert_true(valid_utf8((const unsigned char *)r.body, r.len));
  doc = cJSON_Parse(r.body);
  assert_string_equal(jget(doc, "user")->valuestring,
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9");
  cJSON_Delete(doc);
  http_free(&r);
}

static void nothing_changed_after_all_that(void **state) {
  (void)state;
  expect_error("PATCH", "/api/flags", "{\"echo.leak_tree\": 1, \"x\": 1}", -1, NULL, 400);
  cJSON *doc = http_json(srv, "GET", "/api/flags", NULL, NULL);
  cJSON *f;
  cJSON_ArrayForEach(f, jget(doc, "flags"))
    assert_true(cJSON_Compare(jget(f, "value"), jget(f, "default"), 1));
  cJSON_Delete(doc);
  assert_int_equal(stat_num(srv, "errors/double_free") +
                       stat_num(srv, "errors/invalid_free") +
                       stat_num(srv, "errors/overflow"),
                   0);
  repeat(srv, 1, "GET", "/healthz", NULL, 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(malformed_json_is_a_400),
      cmocka_unit_test(unknown_flags_and_bad_values_are_a_400),
      cmocka_unit_test(a_wrong_method_is_a_405_with_allow),
      cmocka_unit_test(an_unknown_path_is_a_404),
      cmocka_unit_test(a_body_over_the_limit_is_a_413),
      cmocka_unit_test(garbage_query_strings_are_a_400),
      cmocka_unit_test(a_long_user_name_is_cut_on_a_character_boundary),
      cmocka_unit_test(nothing_changed_after_all_that),
      cmocka_unit_test(the_server_stops_on_sigterm_with_status_0),
  };
  return cmocka_run_group_tests_name("server bad input", tests, start, stop);
}

/* The request scope and the memory budget, against what the guards issue
 * asks of them: the scope takes back exactly what requests leak and
 * leaves detached cache entries alone; the budget closes connections from
 * 95 %, sheds app requests from 100 % while the API answers, and lets
 * service resume once memory is back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

#define N 500
#define BODY                                                                 \
  "{\"name\":\"leaklab\",\"tags\":[\"a\",\"b\",\"c\"],\"n\":[1,2,3,4],"      \
  "\"deep\":{\"x\":{\"y\":true}}}"

static srv_t *srv;

static int start(void **state) {
  (void)state;
  static const char *const args[] = {"--sample-ms", "50", NULL};
  srv = srv_start(args, NULL);
  return 0;
}

static int stop(void **state) {
  (void)state;
  int rc = srv_stop(srv);
  srv = NULL;
  return rc == 0 ? 0 : -1;
}

/* Live bytes and blocks one POST /echo of BODY leaves at echo.tree with
 * echo.leak_tree on (and no guard). */
static void leak_of_one(uint64_t *bytes, uint64_t *blocks) {
  cJSON *a = leak_site(srv, "echo.tree");
  uint64_t b0 = a ? (uint64_t)jnum(a, "bytes") : 0;
  uint64_t k0 = a ? (uint64_t)jnum(a, "blocks") : 0;
  cJSON_Delete(a);
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 1, "POST", "/echo", BODY, 200);
  set_flags(srv, "{\"echo.leak_tree\": 0}");
  cJSON *b = leak_site(srv, "echo.tree");
  assert_non_null(b);
  *bytes = (uint64_t)jnum(b, "bytes") - b0;
  *blocks = (uint64_t)jnum(b, "blocks") - k0;
  cJSON_Delete(b);
  assert_true(*bytes > 100 && *blocks > 5);
}

static uint64_t live_bytes(void) { return (uint64_t)stat_num(srv, "heap/live_bytes"); }

static void request_scope_takes_back_exactly_what_requests_leak(void **state) {
  (void)state;
  uint64_t bytes, blocks;
  leak_of_one(&bytes, &blocks);
  repeat(srv, 20, "POST", "/echo", BODY, 200); /* warm every size class */
  uint64_t site0 = site_bytes(srv, "echo.tree");
  uint64_t live0 = live_bytes();
  double rb0 = stat_num(srv, "guards/reclaimed_bytes");
  double rk0 = stat_num(srv, "guards/reclaimed_blocks");
  set_flags(srv, "{\"echo.leak_tree\": 1, \"guard.request_scope\": true}");
  repeat(srv, N, "POST", "/echo", BODY, 200);
  assert_int_equal(site_bytes(srv, "echo.tree"), site0);
  assert_int_equal(live_bytes(), live0);
  assert_int_equal(stat_num(srv, "guards/reclaimed_bytes") - rb0, N * bytes);
  assert_int_equal(stat_num(srv, "guards/reclaimed_blocks") - rk0, N * blocks);
  /* With the guard off again the same requests leak. */
  set_flags(srv, "{\"guard.request_scope\": false}");
  repeat(srv, 10, "POST", "/echo", BODY, 200);
  assert_int_equal(site_bytes(srv, "echo.tree") - site0, 10 * bytes);
}

static void request_scope_leaves_a_detached_session_entry_alive(void **state) {
  (void)state;
  set_flags(srv, "{\"guard.request_scope\": true}");
  uint64_t entries0 = site_bytes(srv, "session.entry");
  long status;
  cJSON *doc = http_json(srv, "POST", "/session", "{\"user\":\"ada\"}", &status);
  assert_int_equal(status, 201);
  char path[128];
  snprintf(path, sizeof path, "/session?id=%s", jget(doc, "id")->valuestring);
  cJSON_Delete(doc);
  /* The entry outlived its request's scope: it is live and still found. */
  assert_true(site_bytes(srv, "session.entry") > entries0);
  for (int i = 1; i <= 3; i++) {
    doc = http_json(srv, "GET", path, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(jget(doc, "user")->valuestring, "ada");
    assert_int_equal(jnum(doc, "hits"), i);
    cJSON_Delete(doc);
  }
  assert_int_equal(stat_num(srv, "guards/reclaimed_blocks"), 0);
}

/* POST /echo with the leak on until the first 503; returns the 200s. */
static unsigned leak_until_shed(unsigned max, http_resp_t *first503) {
  for (unsigned i = 0; i < max; i++) {
    http_resp_t r = http(srv, "POST", "/echo", BODY, -1, NULL);
    if (r.status == 503) {
      *first503 = r;
      return i;
    }
    if (r.status != 200) fail_msg("POST /echo #%u: %ld %s", i, r.status, r.body);
    http_free(&r);
  }
  fail_msg("no 503 after %u leaking requests", max);
  return 0;
}

static void budget_sheds_app_requests_from_the_budget_on_while_the_api_answers(void **state) {
  (void)state;
  uint64_t bytes, blocks;
  leak_of_one(&bytes, &blocks);
  uint64_t live0 = live_bytes();
  uint64_t budget = live0 + 40 * bytes + bytes / 2;
  char flags[128];
  snprintf(flags, sizeof flags,
           "{\"echo.leak_tree\": 1, \"guard.budget_bytes\": %llu}",
           (unsigned long long)budget);
  uint64_t since = last_event(srv);
  set_flags(srv, flags);
  http_resp_t r;
  unsigned served = leak_until_shed(200, &r);
  /* The 503s start where the budget is: 40 trees fit under it. */
  uint64_t live = live_bytes();
  assert_true(served >= 39 && served <= 42);
  assert_true(live > budget);
  assert_true(live <= budget + bytes + 4096);
  assert_true(http_has_header(&r, "Retry-After", "1"));
  assert_true(http_has_header(&r, "Connection", "close"));
  assert_true(http_has_header(&r, "Content-Type", "application/json"));
  assert_non_null(strstr(r.body, "\"error\""));
  http_free(&r);

  double shed0 = stat_num(srv, "guards/shed_requests");
  repeat(srv, 10, "POST", "/echo", BODY, 503);
  repeat(srv, 5, "GET", "/hello", NULL, 503);
  assert_int_equal(stat_num(srv, "guards/shed_requests") - shed0, 15);
  /* Everything but the app keeps answering. */
  static const char *const api[] = {"/", "/healthz", "/api/stats", "/api/flags",
                                    "/api/leaks", "/api/history?limit=2",
                                    "/api/events?limit=2", "/metrics"};
  for (size_t i = 0; i < sizeof api / sizeof api[0]; i++) {
    r = http(srv, "GET", api[i], NULL, 0, NULL);
    if (r.status != 200) fail_msg("GET %s over budget: %ld", api[i], r.status);
    http_free(&r);
  }
  /* One shed event for the crossing, not one per request. */
  cJSON *doc = http_json(srv, "GET", "/api/events?since=0&limit=4096", NULL, NULL);
  int sheds = 0;
  cJSON *ev;
  cJSON_ArrayForEach(ev, jget(doc, "events"))
    if (jnum(ev, "seq") > since && !strcmp(jget(ev, "type")->valuestring, "shed"))
      sheds++;
  cJSON_Delete(doc);
  assert_int_equal(sheds, 1);
}

static void responses_say_connection_close_above_95_percent_of_the_budget(void **state) {
  (void)state;
  /* A heap of half a megabyte or so: what requests hold for a moment is
   * well under the margins below. */
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, N, "POST", "/echo", BODY, 200);
  set_flags(srv, "{\"echo.leak_tree\": 0}");
  uint64_t live = live_bytes();
  assert_true(live > 250000);
  char flags[96];
  /* Live bytes at 97 % of the budget: still served, but not kept alive. */
  snprintf(flags, sizeof flags, "{\"guard.budget_bytes\": %llu}",
           (unsigned long long)(live * 100 / 97));
  set_flags(srv, flags);
  static const char *const paths[] = {"/hello", "/healthz", "/api/stats"};
  for (size_t i = 0; i < 3; i++) {
    http_resp_t r = http(srv, "GET", paths[i], NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    if (!http_has_header(&r, "Connection", "close"))
      fail_msg("GET %s at 97 %% of the budget: no Connection: close", paths[i]);
    http_free(&r);
  }
  /* At half the budget, keep-alive as usual. */
  snprintf(flags, sizeof flags, "{\"guard.budget_bytes\": %llu}",
           (unsigned long long)(live * 2));
  set_flags(srv, flags);
  http_resp_t r = http(srv, "GET", "/hello", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_false(http_has_header(&r, "Connection", "close"));
  http_free(&r);
}

/* Memory leaked by finished requests is unreachable: turning the fault off
 * stops the growth, guard.request_scope stops future leaks, but neither
 * gives back what is already lost. A recycle does, and the budget then
 * lets requests through by itself. */
static void service_resumes_once_the_fault_is_off_and_a_recycle_frees_the_leak(void **state) {
  (void)state;
  uint64_t bytes, blocks;
  leak_of_one(&bytes, &blocks);
  uint64_t live0 = live_bytes();
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 200, "POST", "/echo", BODY, 200);
  /* The leak is past the budget by a hundred trees. */
  char flags[128];
  snprintf(flags, sizeof flags, "{\"guard.budget_bytes\": %llu}",
           (unsigned long long)(live0 + 100 * bytes));
  set_flags(srv, flags);
  repeat(srv, 5, "POST", "/echo", BODY, 503);
  set_flags(srv, "{\"echo.leak_tree\": 0, \"guard.request_scope\": true}");
  repeat(srv, 5, "POST", "/echo", BODY, 503);
  http_resp_t r;
  double shed = stat_num(srv, "guards/shed_requests");
  double pid0 = stat_num(srv, "worker/pid");
  uint64_t since = last_event(srv);

  /* One recycle: the next worker starts with an empty heap. */
  double recycles = stat_num(srv, "guards/recycles");
  srv_signal(srv, SIGHUP);
  for (int i = 0; i < 2000 && stat_num(srv, "guards/recycles") == recycles; i++)
    sleep_ms(10);
  assert_int_equal(stat_num(srv, "guards/recycles"), recycles + 1);
  /* The old worker may still answer on the open connection, over budget
   * and with Connection: close; the client then reconnects, to the new
   * worker once the old one has stopped accepting. */
  for (int i = 0; i < 100; i++) {
    r = http(srv, "POST", "/echo", BODY, -1, NULL);
    if (r.status == 200) break;
    assert_int_equal(r.status, 503);
    assert_true(http_has_header(&r, "Connection", "close"));
    http_free(&r);
    sleep_ms(10);
  }
  assert_int_equal(r.status, 200);
  http_free(&r);
  repeat(srv, 20, "POST", "/echo", BODY, 200);
  assert_true(stat_num(srv, "worker/pid") != pid0);
  assert_true(live_bytes() < live0 + 10 * bytes);
  /* The lifetime counters survived the recycle; the crossing back under
   * the budget is an event. */
  assert_true(stat_num(srv, "guards/shed_requests") >= shed);
  cJSON *doc = http_json(srv, "GET", "/api/events?since=0&limit=4096", NULL, NULL);
  bool back = false;
  cJSON *ev;
  cJSON_ArrayForEach(ev, jget(doc, "events"))
    if (jnum(ev, "seq") > since && !strcmp(jget(ev, "type")->valuestring, "shed") &&
        strstr(jget(ev, "message")->valuestring, "back under"))
      back = true;
  cJSON_Delete(doc);
  assert_true(back);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, start, stop)
  const struct CMUnitTest tests[] = {
      T(request_scope_takes_back_exactly_what_requests_leak),
      T(request_scope_leaves_a_detached_session_entry_alive),
      T(budget_sheds_app_requests_from_the_budget_on_while_the_api_answers),
      T(responses_say_connection_close_above_95_percent_of_the_budget),
      T(service_resumes_once_the_fault_is_off_and_a_recycle_frees_the_leak),
  };
#undef T
  return cmocka_run_group_tests_name("server guards", tests, NULL, NULL);
}

/* Each fault moves the heap's figures by what its mistake predicts, the
 * heap catches and reports what it can with the call site, turning the
 * fault off stops it, and the guards contain it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>
#include <cmocka.h>

#include "harness.h"

#define N 1000
#define BODY                                                                 \
  "{\"name\":\"leaklab\",\"tags\":[\"a\",\"b\",\"c\"],\"n\":[1,2,3,4],"      \
  "\"deep\":{\"x\":{\"y\":true}}}"
#define BAD_BODY "{bad json"

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

/* Bytes one POST /echo of BODY allocates at echo.tree, and how many of
 * them one request with echo.leak_tree on leaves live (cJSON frees a
 * scratch copy of each number it parses, so fewer). */
static void tree_bytes(uint64_t *allocated, uint64_t *leaked) {
  uint64_t t0 = site_total_bytes(srv, "echo.tree");
  repeat(srv, 10, "POST", "/echo", BODY, 200);
  *allocated = (site_total_bytes(srv, "echo.tree") - t0) / 10;
  uint64_t live0 = site_bytes(srv, "echo.tree");
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 1, "POST", "/echo", BODY, 200);
  *leaked = site_bytes(srv, "echo.tree") - live0;
  set_flags(srv, "{\"echo.leak_tree\": 0}");
  assert_true(*leaked > 100);
  assert_true(*leaked <= *allocated && *leaked >= *allocated * 9 / 10);
}

static void echo_leak_tree_leaks_the_whole_tree_of_every_request(void **state) {
  (void)state;
  uint64_t allocated, tree;
  tree_bytes(&allocated, &tree);
  uint64_t live0 = site_bytes(srv, "echo.tree");
  double heap0 = stat_num(srv, "heap/live_bytes");
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, N, "POST", "/echo", BODY, 200);
  uint64_t live1 = site_bytes(srv, "echo.tree");
  assert_int_equal(live1 - live0, N * tree);
  assert_true(stat_num(srv, "heap/live_bytes") - heap0 >= 0.99 * N * tree);

  cJSON *doc = http_json(srv, "GET", "/api/leaks?top=1", NULL, NULL);
  cJSON *top = cJSON_GetArrayItem(jget(doc, "sites"), 0);
  assert_string_equal(jget(top, "site")->valuestring, "echo.tree");
  assert_string_equal(jget(top, "route")->valuestring, "/echo");
  assert_true(jnum(top, "blocks") >= N);
  cJSON_Delete(doc);

  set_flags(srv, "{\"echo.leak_tree\": false}");
  repeat(srv, N, "POST", "/echo", BODY, 200);
  assert_int_equal(site_bytes(srv, "echo.tree"), live1);
}

static void echo_leak_on_error_leaks_the_body_copy_of_bad_json_only(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_on_error\": 1}");
  uint64_t b0 = site_bytes(srv, "echo.body");
  repeat(srv, N, "POST", "/echo", BAD_BODY, 400);
  uint64_t b1 = site_bytes(srv, "echo.body");
  assert_int_equal(b1 - b0, N * (sizeof BAD_BODY));
  repeat(srv, 100, "POST", "/echo", BODY, 200); /* valid JSON: no leak */
  assert_int_equal(site_bytes(srv, "echo.body"), b1);
  set_flags(srv, "{\"echo.leak_on_error\": 0}");
  repeat(srv, N, "POST", "/echo", BAD_BODY, 400);
  assert_int_equal(site_bytes(srv, "echo.body"), b1);
}

static void hello_leak_response_leaks_each_greeting(void **state) {
  (void)state;
  set_flags(srv, "{\"hello.leak_response\": 1}");
  uint64_t b0 = site_bytes(srv, "hello.response");
  repeat(srv, N, "GET", "/hello?name=ada", NULL, 200);
  uint64_t b1 = site_bytes(srv, "hello.response");
  assert_int_equal(b1 - b0, N * strlen("Hello, ada!\n"));
  set_flags(srv, "{\"hello.leak_response\": 0}");
  repeat(srv, N, "GET", "/hello?name=ada", NULL, 200);
  assert_int_equal(site_bytes(srv, "hello.response"), b1);
}

static void report_grow_leak_loses_every_outgrown_buffer(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/report", NULL, 0, NULL);
  size_t cap = 64;
  while (cap < r.len + 1) cap *= 2;
  http_free(&r);
  set_flags(srv, "{\"report.grow_leak\": 1}");
  uint64_t b0 = site_bytes(srv, "report.text");
  repeat(srv, N, "GET", "/report", NULL, 200);
  uint64_t b1 = site_bytes(srv, "report.text");
  /* 64 + 128 + ... + cap/2 per request: every buffer but the last. */
  assert_int_equal(b1 - b0, N * (cap - 64));
  set_flags(srv, "{\"report.grow_leak\": 0}");
  repeat(srv, N, "GET", "/report", NULL, 200);
  assert_int_equal(site_bytes(srv, "report.text"), b1);
}

static void session_unbounded_cache_grows_past_its_bound_until_the_lru_is_back(void **state) {
  (void)state;
  cJSON *doc = http_json(srv, "GET", "/session", NULL, NULL);
  uint64_t entry = (uint64_t)jnum(doc, "entry_bytes");
  uint64_t cap = (uint64_t)jnum(doc, "capacity");
  cJSON_Delete(doc);
  repeat(srv, cap + 50, "POST", "/session", "{}", 201);
  assert_int_equal(site_bytes(srv, "session.entry"), cap * entry);
  set_flags(srv, "{\"session.unbounded_cache\": 1}");
  repeat(srv, N, "POST", "/session", "{}", 201);
  assert_int_equal(site_bytes(srv, "session.entry"), (cap + N) * entry);
  assert_int_equal(stat_num(srv, "errors/double_free") +
                       stat_num(srv, "errors/invalid_free"),
                   0); /* reachable all along: no error anywhere */
  set_flags(srv, "{\"session.unbounded_cache\": 0}");
  repeat(srv, 1, "POST", "/session", "{}", 201);
  assert_int_equal(site_bytes(srv, "session.entry"), cap * entry);
}

static void hello_off_by_one_is_caught_as_an_overflow_at_hello_name(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  uint64_t e0 = heap_errors(srv, "overflow");
  set_flags(srv, "{\"hello.off_by_one\": 1}");
  http_resp_t r = http(srv, "GET", "/hello?name=ada", NULL, 0, NULL);
  assert_string_equal(r.body, "Hello, ada!\n");
  http_free(&r);
  repeat(srv, N - 1, "GET", "/hello?name=ada", NULL, 200);
  assert_int_equal(heap_errors(srv, "overflow") - e0, N);
  assert_int_equal(count_events(srv, since, "overflow", "hello.name", NULL, NULL), N);
  cJSON *site = leak_site(srv, "hello.name");
  assert_null(site); /* caught and freed: nothing leaks */
  set_flags(srv, "{\"hello.off_by_one\": 0}");
  repeat(srv, 100, "GET", "/hello?name=ada", NULL, 200);
  assert_int_equal(heap_errors(srv, "overflow") - e0, N);
}

/* A pointer into a returned function's stack frame: the answer holds what
 * the next call left there, and the heap catches nothing, since no block
 * of it was involved. */
static void hello_stack_return_answers_what_a_later_call_left(void **state) {
  (void)state;
  uint64_t errors0 = heap_errors(srv, "overflow") + heap_errors(srv, "invalid_free") +
                     heap_errors(srv, "double_free") + heap_errors(srv, "use_after_free");
  uint64_t live0 = stat_num(srv, "heap/live_bytes");
  set_flags(srv, "{\"hello.stack_return\": 1}");
  for (int i = 0; i < 10; i++) {
    http_resp_t r = http(srv, "GET", "/hello?name=ada", NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen("Hello, ada!\n"));
    if (!strcmp(r.body, "Hello, ada!\n")) fail_msg("the greeting survived its frame");
    assert_non_null(strchr(r.body, '#'));
    http_free(&r);
  }
  assert_int_equal(heap_errors(srv, "overflow") + heap_errors(srv, "invalid_free") +
                       heap_errors(srv, "double_free") + heap_errors(srv, "use_after_free"),
                   errors0);
  set_flags(srv, "{\"hello.stack_return\": 0}");
  http_resp_t r = http(srv, "GET", "/hello?name=ada", NULL, 0, NULL);
  assert_string_equal(r.body, "Hello, ada!\n");
  http_free(&r);
  assert_true(stat_num(srv, "heap/live_bytes") <= live0 + 4096);
}

static void hello_free_stack_is_caught_as_an_invalid_free(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  uint64_t e0 = heap_errors(srv, "invalid_free");
  set_flags(srv, "{\"hello.free_stack\": true}");
  repeat(srv, N, "GET", "/hello?name=ada", NULL, 200);
  assert_int_equal(heap_errors(srv, "invalid_free") - e0, N);
  assert_int_equal(count_events(srv, since, "invalid_free", "hello.free",
                                "hello.free", NULL), N);
  set_flags(srv, "{\"hello.free_stack\": false}");
  repeat(srv, 100, "GET", "/hello?name=ada", NULL, 200);
  assert_int_equal(heap_errors(srv, "invalid_free") - e0, N);
}

static void echo_free_interior_is_caught_and_the_body_copy_leaks(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  uint64_t e0 = heap_errors(srv, "invalid_free");
  uint64_t b0 = site_bytes(srv, "echo.body");
  set_flags(srv, "{\"echo.free_interior\": 1}");
  repeat(srv, N, "POST", "/echo", BODY, 200);
  assert_int_equal(heap_errors(srv, "invalid_free") - e0, N);
  assert_int_equal(count_events(srv, since, "invalid_free", "echo.body",
                                "echo.free", NULL), N);
  assert_int_equal(site_bytes(srv, "echo.body") - b0, N * sizeof BODY);
  set_flags(srv, "{\"echo.free_interior\": 0}");
  repeat(srv, 100, "POST", "/echo", BODY, 200);
  assert_int_equal(heap_errors(srv, "invalid_free") - e0, N);
}

static void blob_double_free_is_caught_with_both_free_sites(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  uint64_t e0 = heap_errors(srv, "double_free");
  set_flags(srv, "{\"blob.double_free\": 1}");
  repeat(srv, N, "GET", "/blob?size=256", NULL, 200);
  assert_int_equal(heap_errors(srv, "double_free") - e0, N);
  assert_int_equal(count_events(srv, since, "double_free", "blob.scratch",
                                "blob.free_again", "blob.free"), N);
  set_flags(srv, "{\"blob.double_free\": 0}");
  repeat(srv, 100, "GET", "/blob?size=256", NULL, 200);
  assert_int_equal(heap_errors(srv, "double_free") - e0, N);
}

static void blob_free_early_sends_the_poison_and_the_late_write_is_caught(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  uint64_t e0 = heap_errors(srv, "use_after_free");
  set_flags(srv, "{\"blob.free_early\": 1}");
  http_resp_t r = http(srv, "GET", "/blob?size=16384", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 16384);
  for (size_t i = 0; i + 1 < r.len; i++)
    if ((unsigned char)r.body[i] != 0xDD) fail_msg("byte %zu is %02x, not dd", i, (unsigned char)r.body[i]);
  assert_int_equal(r.body[r.len - 1], '\n');
  http_free(&r);
  repeat(srv, N - 1, "GET", "/blob?size=16384", NULL, 200);
  /* Caught when each block leaves the quarantine: all but the newest. */
  uint64_t caught = heap_errors(srv, "use_after_free") - e0;
  assert_true(caught >= N / 2 && caught <= N);
  assert_true(count_events(srv, since, "use_after_free", "blob.buffer", NULL,
                           "blob.free_early") >= N / 2);
  set_flags(srv, "{\"blob.free_early\": 0}");
  r = http(srv, "GET", "/blob?size=16384", NULL, 0, NULL);
  assert_memory_equal(r.body, "leaklab blob: ", 14);
  http_free(&r);
}

static void report_uninit_shows_the_fill_pattern_in_the_hex_dump(void **state) {
  (void)state;
  set_flags(srv, "{\"report.uninit\": 1}");
  http_resp_t r = http(srv, "GET", "/report", NULL, 0, NULL);
  assert_non_null(strstr(r.body, " a5 a5 a5 a5"));
  http_free(&r);
  set_flags(srv, "{\"report.uninit\": 0}");
  r = http(srv, "GET", "/report", NULL, 0, NULL);
  assert_null(strstr(r.body, " a5"));
  http_free(&r);
}

static void guard_request_scope_reclaims_what_requests_leave_but_not_the_cache(void **state) {
  (void)state;
  uint64_t allocated, tree;
  tree_bytes(&allocated, &tree);
  set_flags(srv, "{\"echo.leak_tree\": 1, \"hello.leak_response\": 1, "
                 "\"echo.leak_on_error\": 1, \"report.grow_leak\": 1, "
                 "\"guard.request_scope\": true}");
  uint64_t live0 = site_bytes(srv, "echo.tree");
  double rec0 = stat_num(srv, "guards/reclaimed_bytes");
  long status;
  cJSON *doc = http_json(srv, "POST", "/echo", BODY, &status);
  assert_int_equal(status, 200);
  assert_string_equal(jget(doc, "echo/name")->valuestring, "leaklab");
  cJSON_Delete(doc);
  repeat(srv, N - 1, "POST", "/echo", BODY, 200);
  repeat(srv, 100, "POST", "/echo", BAD_BODY, 400);
  repeat(srv, 100, "GET", "/hello", NULL, 200);
  repeat(srv, 100, "GET", "/report", NULL, 200);
  assert_int_equal(site_bytes(srv, "echo.tree"), live0);
  assert_int_equal(site_bytes(srv, "hello.response"), 0);
  assert_int_equal(site_bytes(srv, "report.text"), 0);
  assert_true(stat_num(srv, "guards/reclaimed_bytes") - rec0 >= N * tree);
  /* The cache's entries are detached on purpose: no scope reclaims them. */
  set_flags(srv, "{\"session.unbounded_cache\": 1}");
  repeat(srv, 300, "POST", "/session", "{}", 201);
  cJSON *site = leak_site(srv, "session.entry");
  assert_int_equal(jnum(site, "blocks"), 300);
  cJSON_Delete(site);
}

static void guard_budget_bytes_sheds_app_requests_while_over_budget(void **state) {
  (void)state;
  uint64_t since = last_event(srv);
  set_flags(srv, "{\"guard.budget_bytes\": 1}");
  http_resp_t r = http(srv, "GET", "/hello", NULL, 0, NULL);
  assert_int_equal(r.status, 503);
  assert_true(http_has_header(&r, "Retry-After", "1"));
  assert_non_null(strstr(r.body, "\"error\""));
  http_free(&r);
  repeat(srv, 10, "POST", "/echo", BODY, 503);
  repeat(srv, 1, "GET", "/healthz", NULL, 200); /* the API still answers */
  assert_true(stat_num(srv, "guards/shed_requests") >= 11);
  cJSON *doc = http_json(srv, "GET", "/api/events?since=0", NULL, NULL);
  int sheds = 0;
  cJSON *ev;
  cJSON_ArrayForEach(ev, jget(doc, "events"))
    if (jnum(ev, "seq") > since && !strcmp(jget(ev, "type")->valuestring, "shed"))
      sheds++;
  assert_int_equal(sheds, 1);
  cJSON_Delete(doc);
  set_flags(srv, "{\"guard.budget_bytes\": 0}");
  repeat(srv, 10, "GET", "/hello", NULL, 200);
}

static void a_steadily_growing_site_is_a_suspected_leak_with_time_to_budget(void **state) {
  (void)state;
  repeat(srv, 3, "POST", "/session", "{}", 201);
  set_flags(srv, "{\"echo.leak_tree\": 1, \"guard.budget_bytes\": 1073741824}");
  for (int round = 0; round < 24; round++) { /* 6 s at 250 ms */
    repeat(srv, 10, "POST", "/echo", BODY, 200);
    sleep_ms(250);
  }
  cJSON *site = leak_site(srv, "echo.tree");
  assert_non_null(site);
  assert_true(cJSON_IsTrue(jget(site, "suspected_leak")));
  assert_true(jnum(site, "growth_bytes_per_s") > 0);
  assert_true(jnum(site, "growth_window_s") >= 4);
  assert_true(jnum(site, "seconds_to_budget") > 0);
  assert_true(jnum(site, "oldest_age_s") >= 4);
  cJSON_Delete(site);
  site = leak_site(srv, "session.entry"); /* live, but not growing */
  assert_non_null(site);
  assert_false(cJSON_IsTrue(jget(site, "suspected_leak")));
  cJSON_Delete(site);
}

static void with_every_fault_at_half_rate_the_server_keeps_serving(void **state) {
  (void)state;
  cJSON *flags = http_json(srv, "GET", "/api/flags", NULL, NULL);
  cJSON *all = cJSON_CreateObject(), *f;
  int faults = 0;
  cJSON_ArrayForEach(f, jget(flags, "flags")) {
    if (strcmp(jget(f, "kind")->valuestring, "fault")) continue;
    /* Every memory mistake; not the deadlock, which stops its thread for
     * good by design and has the watchdog's test (server_recycle). */
    if (!strcmp(jget(f, "name")->valuestring, "session.deadlock")) continue;
    cJSON_AddNumberToObject(all, jget(f, "name")->valuestring, 0.5);
    faults++;
  }
  cJSON_Delete(flags);
  char *json = cJSON_PrintUnformatted(all);
  cJSON_Delete(all);
  set_flags(srv, json);
  free(json);
  assert_true(faults >= 10);
  for (int i = 0; i < 300; i++) {
    repeat(srv, 1, "GET", "/hello?name=ada", NULL, 200);
    repeat(srv, 1, "POST", "/echo", BODY, 200);
    repeat(srv, 1, "POST", "/echo", BAD_BODY, 400);
    repeat(srv, 1, "POST", "/session", "{}", 201);
    repeat(srv, 1, "GET", "/blob?size=2048", NULL, 200);
    repeat(srv, 1, "GET", "/report", NULL, 200);
  }
  repeat(srv, 1, "GET", "/healthz", NULL, 200);
  /* About half of 300 requests make each mistake. */
  double df = stat_num(srv, "errors/double_free");
  assert_true(df > 100 && df < 200);
  assert_true(stat_num(srv, "errors/invalid_free") > 200);
  assert_true(stat_num(srv, "errors/overflow") > 100);
  http_resp_t r = http(srv, "POST", "/api/flags/reset", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  http_free(&r);
}

static void the_event_log_keeps_flag_changes_through_a_flood_of_heap_errors(void **state) {
  (void)state;
  set_flags(srv, "{\"hello.free_stack\": 1}");
  repeat(srv, 5000, "GET", "/hello", NULL, 200);
  cJSON *doc = http_json(srv, "GET", "/api/events?since=0&limit=4096", NULL, NULL);
  double last = jnum(doc, "last_seq");
  assert_true(last >= 5000);
  cJSON *events = jget(doc, "events");
  int n = cJSON_GetArraySize(events), k = 0;
  /* First what the flood pushed out of the ring but was kept apart: the
   * worker's start and the flag change, in order. */
  bool flags = false;
  double prev = 0;
  for (; k < n; k++) {
    cJSON *ev = cJSON_GetArrayItem(events, k);
    if (!strcmp(jget(ev, "type")->valuestring, "heap_error")) break;
    flags |= !strcmp(jget(ev, "type")->valuestring, "flags");
    assert_true(jnum(ev, "seq") > prev);
    prev = jnum(ev, "seq");
  }
  assert_true(k >= 2);
  assert_true(flags);
  /* Then the newest heap errors, with no gap; the rest is counted. */
  assert_true(k < n);
  double first = jnum(cJSON_GetArrayItem(events, k), "seq");
  assert_true(first > prev);
  assert_true(first >= last - 4095);
  assert_int_equal(jnum(doc, "dropped"), first - 1 - k);
  for (int i = k; i < n; i++)
    assert_int_equal(jnum(cJSON_GetArrayItem(events, i), "seq"), first + (i - k));
  cJSON_Delete(doc);
}

/* One client process: n rounds over every app endpoint; exits 0 if every
 * answer had the expected status. */
static void client(srv_t *parent, int n) {
  srv_t me = *parent;
  me.curl = curl_easy_init();
  static const struct {
    const char *method, *path, *body;
    long status;
  } reqs[] = {
      {"GET", "/hello?name=ada", NULL, 200}, {"POST", "/echo", BODY, 200},
      {"POST", "/echo", BAD_BODY, 400},      {"POST", "/session", "{}", 201},
      {"GET", "/blob?size=3000", NULL, 200}, {"GET", "/report", NULL, 200},
      {"GET", "/api/stats", NULL, 200},      {"GET", "/api/leaks?top=5", NULL, 200},
      {"GET", "/metrics", NULL, 200},
  };
  for (int i = 0; i < n; i++)
    for (size_t k = 0; k < sizeof reqs / sizeof reqs[0]; k++) {
      http_resp_t r = http(&me, reqs[k].method, reqs[k].path, reqs[k].body, -1, NULL);
      if (r.status != reqs[k].status) {
        fprintf(stderr, "%s %s: %ld\n", reqs[k].method, reqs[k].path, r.status);
        _exit(1);
      }
      http_free(&r);
    }
  curl_easy_cleanup(me.curl);
  _exit(0);
}

static void concurrent_clients_with_every_fault_on_all_get_their_answers(void **state) {
  (void)state;
  set_flags(srv, "{\"hello.leak_response\": 1, \"hello.off_by_one\": 1, "
                 "\"hello.free_stack\": 1, \"echo.leak_tree\": 1, "
                 "\"echo.leak_on_error\": 1, \"echo.free_interior\": 1, "
                 "\"session.unbounded_cache\": 1, \"blob.free_early\": 1, "
                 "\"blob.double_free\": 1, \"report.uninit\": 1, "
                 "\"report.grow_leak\": 1, \"guard.request_scope\": true}");
  enum { CLIENTS = 8 };
  pid_t pids[CLIENTS];
  for (int c = 0; c < CLIENTS; c++) {
    pids[c] = fork();
    assert_true(pids[c] >= 0);
    if (pids[c] == 0) client(srv, 40);
  }
  for (int c = 0; c < CLIENTS; c++) {
    int st;
    assert_int_equal(waitpid(pids[c], &st, 0), pids[c]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  repeat(srv, 1, "GET", "/healthz", NULL, 200);
  /* The request scope took back every fault's leak but the cache's. */
  assert_int_equal(site_bytes(srv, "echo.tree"), 0);
  assert_int_equal(site_bytes(srv, "report.text"), 0);
  assert_true(stat_num(srv, "errors/double_free") == CLIENTS * 40);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, start, stop)
  const struct CMUnitTest tests[] = {
      T(echo_leak_tree_leaks_the_whole_tree_of_every_request),
      T(echo_leak_on_error_leaks_the_body_copy_of_bad_json_only),
      T(hello_leak_response_leaks_each_greeting),
      T(report_grow_leak_loses_every_outgrown_buffer),
      T(session_unbounded_cache_grows_past_its_bound_until_the_lru_is_back),
      T(hello_off_by_one_is_caught_as_an_overflow_at_hello_name),
      T(hello_free_stack_is_caught_as_an_invalid_free),
      T(hello_stack_return_answers_what_a_later_call_left),
      T(echo_free_interior_is_caught_and_the_body_copy_leaks),
      T(blob_double_free_is_caught_with_both_free_sites),
      T(blob_free_early_sends_the_poison_and_the_late_write_is_caught),
      T(report_uninit_shows_the_fill_pattern_in_the_hex_dump),
      T(guard_request_scope_reclaims_what_requests_leave_but_not_the_cache),
      T(guard_budget_bytes_sheds_app_requests_while_over_budget),
      T(a_steadily_growing_site_is_a_suspected_leak_with_time_to_budget),
      T(with_every_fault_at_half_rate_the_server_keeps_serving),
      T(the_event_log_keeps_flag_changes_through_a_flood_of_heap_errors),
      T(concurrent_clients_with_every_fault_on_all_get_their_answers),
  };
  return cmocka_run_group_tests_name("server faults", tests, NULL, NULL);
}

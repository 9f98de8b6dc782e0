/* Every endpoint answers as the HTTP contract in docs/ARCHITECTURE.md says. */
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
  static const char *const args[] = {"--sample-ms", "50", NULL};
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

static void healthz_answers_ok(void **state) {
  (void)state;
  long status;
  cJSON *doc = http_json(srv, "GET", "/healthz", NULL, &status);
  assert_int_equal(status, 200);
  assert_string_equal(jget(doc, "status")->valuestring, "ok");
  cJSON_Delete(doc);
}

static void stats_has_every_field_of_the_design(void **state) {
  (void)state;
  static const char *const numbers[] = {
      "uptime_s", "pid", "worker/pid", "worker/generation",
      "worker/started_at_ms", "worker/requests", "process/rss_bytes",
      "process/vm_bytes", "heap/live_bytes", "heap/live_blocks",
      "heap/peak_live_bytes", "heap/mapped_bytes", "heap/overhead_bytes",
      "heap/total_allocs", "heap/total_frees", "errors/double_free",
      "errors/invalid_free", "errors/overflow", "errors/use_after_free",
      "requests/total", "requests/rate_per_s", "guards/reclaimed_bytes",
      "guards/reclaimed_blocks", "guards/shed_requests", "guards/recycles",
      "flags/echo.leak_tree", "flags/guard.budget_bytes", NULL};
  repeat(srv, 3, "GET", "/hello", NULL, 200);
  cJSON *doc = http_json(srv, "GET", "/api/stats", NULL, NULL);
  for (int i = 0; numbers[i]; i++)
    if (!cJSON_IsNumber(jget(doc, numbers[i]))) fail_msg("no number at %s", numbers[i]);
  assert_string_equal(jget(doc, "heap/backend")->valuestring, "lab");
  assert_true(cJSON_IsBool(jget(doc, "flags/guard.request_scope")));
  assert_true(jnum(doc, "process/rss_bytes") > 0);
  assert_true(jnum(doc, "requests/by_status/200") >= 3);
  assert_int_equal(jnum(doc, "worker/generation"), 1);
  cJSON_Delete(doc);
}

static void history_returns_samples_newer_than_since_oldest_first(void **state) {
  (void)state;
  /* Several samples at 50 ms: ask until there are (a sampler on a busy
   * machine may take longer than 150 ms for three). */
  cJSON *doc = NULL, *samples = NULL;
  int n = 0;
  for (int i = 0; i < 250 && n < 3; i++) {
    if (i) sleep_ms(20);
    cJSON_Delete(doc);
    doc = http_json(srv, "GET", "/api/history", NULL, NULL);
    samples = jget(doc, "samples");
    n = cJSON_GetArraySize(samples);
  }
  assert_true(n >= 3);
  assert_int_equal(jnum(doc, "sample_ms"), 50);
  double prev = 0;
  cJSON *s;
  cJSON_ArrayForEach(s, samples) {
    assert_true(jnum(s, "t_ms") > prev);
    prev = jnum(s, "t_ms");
    assert_true(jnum(s, "rss_bytes") > 0);
    assert_true(cJSON_IsNumber(jget(s, "live_bytes")));
    assert_true(cJSON_IsNumber(jget(s, "rate_per_s")));
    assert_true(cJSON_IsArray(jget(s, "top_sites")));
  }
  double since = jnum(cJSON_GetArrayItem(samples, n - 2), "t_ms");
  cJSON_Delete(doc);
  char path[64];
  snprintf(path, sizeof path, "/api/history?since=%.0f", since);
  doc = http_json(srv, "GET", path, NULL, NULL);
  samples = jget(doc, "samples");
  assert_true(cJSON_GetArraySize(samples) >= 1);
  cJSON_ArrayForEach(s, samples) assert_true(jnum(s, "t_ms") > since);
  cJSON_Delete(doc);
}

static void flags_lists_every_fault_and_guard_with_its_description(void **state) {
  (void)state;
  cJSON *doc = http_json(srv, "GET", "/api/flags", NULL, NULL);
  cJSON *f;
  int faults = 0, guards = 0;
  cJSON_ArrayForEach(f, jget(doc, "flags")) {
    const char *name = jget(f, "name")->valuestring;
    const char *kind = jget(f, "kind")->valuestring;
    assert_true(strlen(jget(f, "description")->valuestring) > 20);
    assert_non_null(jget(f, "value"));
    assert_non_null(jget(f, "default"));
    if (!strcmp(kind, "fault")) {
      faults++;
      assert_true(strchr(name, '.') != NULL);
      assert_true(strlen(jget(f, "mistake")->valuestring) > 5);
      assert_int_equal(jnum(f, "value"), 0); /* off by default */
    } else {
      guards++;
      /* The guards, and the worker's heap limit that they guard against. */
      assert_true(!strncmp(name, "guard.", 6) ||
                  !strcmp(name, "worker.memory_limit_bytes"));
    }
  }
  assert_true(faults >= 10);
  assert_int_equal(guards, 5);
  cJSON_Delete(doc);
}

static void leaks_lists_live_sites_with_their_route(void **state) {
  (void)state;
  http_resp_t r = http(srv, "POST", "/session", "{\"user\":\"ada\"}", -1, NULL);
  assert_int_equal(r.status, 201);
  http_free(&r);
  cJSON *site = leak_site(srv, "session.entry");
  assert_non_null(site);
  assert_string_equal(jget(site, "route")->valuestring, "/session");
  assert_true(jnum(site, "blocks") >= 1);
  assert_true(jnum(site, "bytes") > 0);
  assert_true(cJSON_IsNumber(jget(site, "growth_bytes_per_s")));
  assert_true(cJSON_IsBool(jget(site, "suspected_leak")));
  assert_true(cJSON_IsNull(jget(site, "seconds_to_budget"))); /* no budget */
  cJSON_Delete(site);
  cJSON *doc = http_json(srv, "GET", "/api/leaks?top=1", NULL, NULL);
  assert_int_equal(cJSON_GetArraySize(jget(doc, "sites")), 1);
  cJSON_Delete(doc);
}

static void events_begin_with_the_worker_start(void **state) {
  (void)state;
  cJSON *doc = http_json(srv, "GET", "/api/events?since=0", NULL, NULL);
  cJSON *first = cJSON_GetArrayItem(jget(doc, "events"), 0);
  assert_non_null(first);
  assert_int_equal(jnum(first, "seq"), 1);
  assert_string_equal(jget(first, "type")->valuestring, "start");
  assert_true(jnum(doc, "last_seq") >= 1);
  cJSON_Delete(doc);
  doc = http_json(srv, "GET", "/api/events?since=1", NULL, NULL);
  cJSON *ev;
  cJSON_ArrayForEach(ev, jget(doc, "events")) assert_true(jnum(ev, "seq") > 1);
  cJSON_Delete(doc);
}

/* A client that asks for what comes after the last possible sequence
 * number gets nothing, not everything from the start again. */
static void events_since_the_largest_number_are_none(void **state) {
  (void)state;
  cJSON *doc = http_json(srv, "GET", "/api/events?since=18446744073709551615",
                         NULL, NULL);
  assert_int_equal(cJSON_GetArraySize(jget(doc, "events")), 0);
  assert_int_equal(jnum(doc, "dropped"), 0);
  assert_true(jnum(doc, "last_seq") >= 1);
  cJSON_Delete(doc);
  /* since = last_seq: nothing new either. */
  doc = http_json(srv, "GET", "/api/events?since=0", NULL, NULL);
  char path[64];
  snprintf(path, sizeof path, "/api/events?since=%.0f", jnum(doc, "last_seq"));
  cJSON_Delete(doc);
  doc = http_json(srv, "GET", path, NULL, NULL);
  assert_int_equal(cJSON_GetArraySize(jget(doc, "events")), 0);
  assert_int_equal(jnum(doc, "dropped"), 0);
  cJSON_Delete(doc);
}

static void hello_greets_by_name(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/hello?name=ada", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "Hello, ada!\n");
  http_free(&r);
  r = http(srv, "GET", "/hello", NULL, 0, NULL);
  assert_string_equal(r.body, "Hello, world!\n");
  http_free(&r);
}

static void echo_answers_a_document_made_from_the_body(void **state) {
  (void)state;
  long status;
  cJSON *doc = http_json(srv, "POST", "/echo", "{\"a\":[1,2,{\"b\":null}]}", &status);
  assert_int_equal(status, 200);
  assert_string_equal(jget(doc, "type")->valuestring, "object");
  assert_int_equal(cJSON_GetArraySize(jget(doc, "echo/a")), 3);
  assert_int_equal(jnum(doc, "nodes"), 6);
  assert_int_equal(jnum(doc, "bytes"), 22);
  cJSON_Delete(doc);
  doc = http_json(srv, "GET", "/echo", NULL, &status);
  assert_int_equal(status, 200);
  assert_string_equal(jget(doc, "echo/greeting")->valuestring, "hello");
  cJSON_Delete(doc);
}

static void session_post_creates_one_and_get_finds_it(void **state) {
  (void)state;
  long status;
  cJSON *doc = http_json(srv, "POST", "/session", "{\"user\":\"grace\"}", &status);
  assert_int_equal(status, 201);
  char path[128];
  snprintf(path, sizeof path, "/session?id=%s", jget(doc, "id")->valuestring);
  cJSON_Delete(doc);
  doc = http_json(srv, "GET", path, NULL, &status);
  assert_int_equal(status, 200);
  assert_string_equal(jget(doc, "user")->valuestring, "grace");
  assert_int_equal(jnum(doc, "hits"), 1);
  cJSON_Delete(doc);
  doc = http_json(srv, "GET", "/session?id=nope", NULL, &status);
  assert_int_equal(status, 404);
  cJSON_Delete(doc);
  doc = http_json(srv, "GET", "/session", NULL, &status);
  assert_int_equal(status, 200);
  assert_int_equal(jnum(doc, "capacity"), 256);
  cJSON_Delete(doc);
}

static void blob_returns_the_size_asked_for(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/blob?size=100000", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 100000);
  assert_memory_equal(r.body, "leaklab blob: ", 14);
  http_free(&r);
  r = http(srv, "GET", "/blob", NULL, 0, NULL);
  assert_int_equal(r.len, 16384);
  http_free(&r);
}

static void report_dumps_one_row_per_record_with_zeroed_padding(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/report?rows=5", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  int lines = 0;
  for (char *p = r.body; *p; p++) lines += *p == '\n';
  assert_int_equal(lines, 6);
  assert_null(strstr(r.body, " a5"));
  assert_non_null(strstr(r.body, "row-4"));
  http_free(&r);
}

static void root_serves_the_embedded_dashboard_and_its_files(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "<title>leaklab</title>"));
  assert_non_null(strstr(r.body, "/uplot.min.js"));
  assert_true(http_has_header(&r, "Content-Type", "text/html; charset=utf-8"));
  assert_true(http_has_header(&r, "X-Content-Type-Options", "nosniff"));
  http_free(&r);
  r = http(srv, "GET", "/uplot.min.js", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_true(http_has_header(&r, "Content-Type", "text/javascript; charset=utf-8"));
  assert_non_null(strstr(r.body, "uPlot"));
  http_free(&r);
  r = http(srv, "GET", "/app.js", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  http_free(&r);
  r = http(srv, "GET", "/style.css", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  http_free(&r);
  r = http(srv, "GET", "/nosuch.js", NULL, 0, NULL);
  assert_int_equal(r.status, 404);
  http_free(&r);
}

static void metrics_are_prometheus_text(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_true(http_has_header(&r, "Content-Type",
                              "text/plain; version=0.0.4; charset=utf-8"));
  assert_non_null(strstr(r.body, "\nprocess_resident_memory_bytes "));
  http_free(&r);
}

static void head_is_allowed_wherever_get_is(void **state) {
  (void)state;
  http_resp_t r = http(srv, "HEAD", "/api/stats", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 0);
  http_free(&r);
}

/* Requests with this status so far, from a stats document. */
static double by_status(cJSON *stats, const char *code) {
  char path[64];
  snprintf(path, sizeof path, "requests/by_status/%s", code);
  cJSON *v = jget(stats, path);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void requests_are_counted_by_status(void **state) {
  (void)state;
  cJSON *before = http_json(srv, "GET", "/api/stats", NULL, NULL);
  repeat(srv, 5, "GET", "/hello", NULL, 200);
  repeat(srv, 2, "GET", "/nope", NULL, 404);
  cJSON *after = http_json(srv, "GET", "/api/stats", NULL, NULL);
  /* The first stats request counts once it has completed. */
  assert_int_equal(by_status(after, "200") - by_status(before, "200"), 5 + 1);
  assert_int_equal(by_status(after, "404") - by_status(before, "404"), 2);
  assert_int_equal(jnum(after, "requests/total") - jnum(before, "requests/total"),
                   5 + 2 + 1);
  cJSON_Delete(before);
  cJSON_Delete(after);
}

static void history_keeps_only_the_newest_samples(void **state) {
  (void)state;
  static const char *const args[] = {"--history", "16", "--sample-ms", "10", NULL};
  srv_t *other = srv_start(args, NULL);
  /* Once the ring has wrapped (its oldest sample is no longer the first
   * one taken), it holds the newest 16: 14 or 15 while one is written. */
  cJSON *doc = NULL, *samples = NULL, *s;
  double first = 0;
  for (int i = 0; i < 500; i++) {
    if (i) sleep_ms(20);
    cJSON_Delete(doc);
    doc = http_json(other, "GET", "/api/history", NULL, NULL);
    samples = jget(doc, "samples");
    if (!cJSON_GetArraySize(samples)) continue;
    double oldest = jnum(cJSON_GetArrayItem(samples, 0), "t_ms");
    if (!first) first = oldest;
    else if (oldest > first && cJSON_GetArraySize(samples) >= 14) break;
  }
  assert_int_equal(jnum(doc, "capacity"), 16);
  assert_true(cJSON_GetArraySize(samples) >= 14 && cJSON_GetArraySize(samples) <= 16);
  double prev = 0;
  cJSON_ArrayForEach(s, samples) {
    assert_true(jnum(s, "t_ms") > prev);
    prev = jnum(s, "t_ms");
  }
  cJSON_Delete(doc);
  doc = http_json(other, "GET", "/api/history?limit=3", NULL, NULL);
  assert_int_equal(cJSON_GetArraySize(jget(doc, "samples")), 3);
  cJSON_Delete(doc);
  assert_int_equal(srv_stop(other), 0);
}

static void the_libc_heap_serves_the_same_api(void **state) {
  (void)state;
  static const char *const args[] = {"--heap", "libc", "--threads", "1", NULL};
  srv_t *other = srv_start(args, NULL);
  repeat(other, 20, "POST", "/echo", "[1,2,3]", 200);
  cJSON *doc = http_json(other, "GET", "/api/stats", NULL, NULL);
  assert_string_equal(jget(doc, "heap/backend")->valuestring, "libc");
  assert_true(jnum(doc, "heap/total_allocs") > 20);
  cJSON_Delete(doc);
  assert_int_equal(srv_stop(other), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(healthz_answers_ok),
      cmocka_unit_test(stats_has_every_field_of_the_design),
      cmocka_unit_test(history_returns_samples_newer_than_since_oldest_first),
      cmocka_unit_test(flags_lists_every_fault_and_guard_with_its_description),
      cmocka_unit_test(leaks_lists_live_sites_with_their_route),
      cmocka_unit_test(events_begin_with_the_worker_start),
      cmocka_unit_test(events_since_the_largest_number_are_none),
      cmocka_unit_test(hello_greets_by_name),
      cmocka_unit_test(echo_answers_a_document_made_from_the_body),
      cmocka_unit_test(session_post_creates_one_and_get_finds_it),
      cmocka_unit_test(blob_returns_the_size_asked_for),
      cmocka_unit_test(report_dumps_one_row_per_record_with_zeroed_padding),
      cmocka_unit_test(root_serves_the_embedded_dashboard_and_its_files),
      cmocka_unit_test(metrics_are_prometheus_text),
      cmocka_unit_test(head_is_allowed_wherever_get_is),
      cmocka_unit_test(requests_are_counted_by_status),
      cmocka_unit_test(history_keeps_only_the_newest_samples),
      cmocka_unit_test(the_libc_heap_serves_the_same_api),
      cmocka_unit_test(the_server_stops_on_sigterm_with_status_0),
  };
  return cmocka_run_group_tests_name("server endpoints", tests, start, stop);
}

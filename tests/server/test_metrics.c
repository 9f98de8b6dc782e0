/* /metrics is valid Prometheus text (promtool agrees) and counts what the
 * server did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static srv_t *srv;

static int start(void **state) {
  (void)state;
  static const char *const args[] = {"--sample-ms", "50", NULL};
  srv = srv_start(args, NULL);
  /* Something in every family: app traffic, errors, flags, shed. */
  set_flags(srv, "{\"blob.double_free\": 1, \"hello.off_by_one\": 1, "
                 "\"echo.free_interior\": 1, \"echo.leak_tree\": 0.5}");
  repeat(srv, 20, "GET", "/hello?name=ada", NULL, 200);
  repeat(srv, 20, "POST", "/echo", "{\"a\":[1,\"two\"]}", 200);
  repeat(srv, 5, "POST", "/echo", "{bad", 400);
  repeat(srv, 5, "GET", "/blob?size=1000", NULL, 200);
  repeat(srv, 3, "POST", "/session", "{}", 201);
  repeat(srv, 2, "GET", "/nope", NULL, 404);
  repeat(srv, 2, "DELETE", "/echo", NULL, 405);
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

/* A sample's value: the line starting with `series` followed by a space. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p;) {
    if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    p = strchr(p, '\n');
    if (p) p++;
  }
  fail_msg("no sample %s", series);
  return -1;
}

static void metrics_pass_promtool_check_metrics(void **state) {
  (void)state;
  const char *promtool = PROMTOOL;
  if (!*promtool || access(promtool, X_OK)) {
    if (system("command -v promtool >/dev/null 2>&1")) {
      fprintf(stderr, "promtool not found (scripts/install-deps installs "
                      "Debian's prometheus package): skipped\n");
      skip();
    }
    promtool = "promtool";
  }
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  char path[] = "/tmp/leaklab-metrics-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, r.body, r.len), (ssize_t)r.len);
  close(fd);
  http_free(&r);
  char cmd[512], out[] = "/tmp/leaklab-promtool-XXXXXX";
  int ofd = mkstemp(out);
  close(ofd);
  snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' > '%s' 2>&1", promtool,
           path, out);
  int rc = system(cmd);
  char report[4096] = "";
  FILE *f = fopen(out, "r");
  if (f) {
    size_t k = fread(report, 1, sizeof report - 1, f);
    report[k] = '\0';
    fclose(f);
  }
  unlink(path);
  unlink(out);
  if (rc != 0 || report[0]) fail_msg("promtool check metrics (status %d):\n%s", rc, report);
}

static void metrics_carry_the_process_and_heap_figures(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  static const char *const names[] = {
      "process_resident_memory_bytes", "process_virtual_memory_bytes",
      "process_cpu_seconds_total",     "process_start_time_seconds",
      "process_open_fds",              "leaklab_heap_live_bytes",
      "leaklab_heap_live_blocks",      "leaklab_heap_mapped_bytes",
      "leaklab_heap_allocs_total",     "leaklab_uptime_seconds", NULL};
  for (int i = 0; names[i]; i++) {
    char help[128];
    snprintf(help, sizeof help, "# TYPE %s ", names[i]);
    assert_non_null(strstr(r.body, help));
    (void)sample(r.body, names[i]);
  }
  assert_true(sample(r.body, "process_resident_memory_bytes") > 1e6);
  assert_true(sample(r.body, "leaklab_heap_live_bytes") > 0);
  assert_true(sample(r.body, "process_start_time_seconds") > 1.6e9);
  http_free(&r);
}

static void metrics_count_heap_errors_by_kind_and_site(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  assert_int_equal(sample(r.body, "leaklab_heap_errors_total{kind=\"double_free\"}"), 5);
  assert_int_equal(sample(r.body, "leaklab_heap_errors_total{kind=\"overflow\"}"), 20);
  assert_int_equal(sample(r.body, "leaklab_heap_errors_total{kind=\"invalid_free\"}"), 20);
  assert_int_equal(
      sample(r.body, "leaklab_site_errors_total{site=\"blob.scratch\",kind=\"double_free\"}"), 5);
  assert_true(sample(r.body, "leaklab_site_live_bytes{site=\"echo.tree\",route=\"/echo\"}") > 0);
  http_free(&r);
}

static void metrics_count_requests_by_route_and_status(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  assert_int_equal(sample(r.body, "leaklab_http_requests_total{route=\"/hello\",status=\"200\"}"), 20);
  assert_int_equal(sample(r.body, "leaklab_http_requests_total{route=\"/echo\",status=\"400\"}"), 5);
  assert_int_equal(sample(r.body, "leaklab_http_requests_total{route=\"/echo\",status=\"405\"}"), 2);
  assert_int_equal(sample(r.body, "leaklab_http_requests_total{route=\"other\",status=\"404\"}"), 2);
  assert_int_equal(sample(r.body, "leaklab_http_requests_total{route=\"/session\",status=\"201\"}"), 3);
  http_free(&r);
}

static void the_latency_histogram_adds_up(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  double inf = sample(r.body, "leaklab_http_request_duration_seconds_bucket{route=\"/echo\",le=\"+Inf\"}");
  double count = sample(r.body, "leaklab_http_request_duration_seconds_count{route=\"/echo\"}");
  double sum = sample(r.body, "leaklab_http_request_duration_seconds_sum{route=\"/echo\"}");
  assert_int_equal(inf, 27);
  assert_int_equal(count, 27);
  assert_true(sum > 0 && sum < 27 * 2.5);
  double low = sample(r.body, "leaklab_http_request_duration_seconds_bucket{route=\"/echo\",le=\"0.001\"}");
  double high = sample(r.body, "leaklab_http_request_duration_seconds_bucket{route=\"/echo\",le=\"2.5\"}");
  assert_true(low <= high && high <= inf);
  http_free(&r);
}

static void metrics_show_flag_values(void **state) {
  (void)state;
  http_resp_t r = http(srv, "GET", "/metrics", NULL, 0, NULL);
  assert_true(sample(r.body, "leaklab_flag_value{flag=\"echo.leak_tree\",kind=\"fault\"}") == 0.5);
  assert_true(sample(r.body, "leaklab_flag_value{flag=\"guard.request_scope\",kind=\"guard\"}") == 0);
  http_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(metrics_pass_promtool_check_metrics),
      cmocka_unit_test(metrics_carry_the_process_and_heap_figures),
      cmocka_unit_test(metrics_count_heap_errors_by_kind_and_site),
      cmocka_unit_test(metrics_count_requests_by_route_and_status),
      cmocka_unit_test(the_latency_histogram_adds_up),
      cmocka_unit_test(metrics_show_flag_values),
      cmocka_unit_test(the_server_stops_on_sigterm_with_status_0),
  };
  return cmocka_run_group_tests_name("server metrics", tests, start, stop);
}

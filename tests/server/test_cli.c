/* The command line: --help, --version, bad options (exit 2), environment
 * equivalents, the port file, and a clean stop on SIGINT and SIGTERM. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

/* Run leaklab with args and env to completion (10 s at most); returns its
 * exit status and what it printed on stdout and stderr. */
static int run(const char *const *args, const char *env, char *out,
               size_t outcap, char *err, size_t errcap) {
  int po[2], pe[2];
  assert_int_equal(pipe(po), 0);
  assert_int_equal(pipe(pe), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(po[1], 1);
    dup2(pe[1], 2);
    close(po[0]);
    close(pe[0]);
    if (env) putenv((char *)env);
    const char *argv[32] = {LEAKLAB_BIN};
    for (int i = 0; args && args[i] && i < 30; i++) argv[i + 1] = args[i];
    execv(LEAKLAB_BIN, (char *const *)argv);
    _exit(127);
  }
  close(po[1]);
  close(pe[1]);
  size_t no = 0, ne = 0;
  ssize_t k;
  while ((k = read(po[0], out + no, outcap - 1 - no)) > 0) no += (size_t)k;
  while ((k = read(pe[0], err + ne, errcap - 1 - ne)) > 0) ne += (size_t)k;
  out[no] = err[ne] = '\0';
  close(po[0]);
  close(pe[0]);
  int st;
  for (int i = 0; i < 1000 && waitpid(pid, &st, WNOHANG) != pid; i++) {
    if (i == 999) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
    sleep_ms(10);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char out[65536], err[65536];

static void help_prints_every_option_and_exits_0(void **state) {
  (void)state;
  static const char *const args[] = {"--help", NULL};
  assert_int_equal(run(args, NULL, out, sizeof out, err, sizeof err), 0);
  static const char *const opts[] = {
      "--port", "--bind", "--threads", "--heap", "--sample-ms", "--history",
      "--admin-token", "--max-conns", "--timeout", "--max-body",
      "--single-process", "--port-file", "--version", "LEAKLAB_PORT", NULL};
  for (int i = 0; opts[i]; i++)
    if (!strstr(out, opts[i])) fail_msg("--help does not mention %s", opts[i]);
}

static void version_prints_the_version_and_exits_0(void **state) {
  (void)state;
  static const char *const args[] = {"--version", NULL};
  assert_int_equal(run(args, NULL, out, sizeof out, err, sizeof err), 0);
  assert_memory_equal(out, "leaklab ", 8);
}

static void bad_options_exit_2_with_a_message(void **state) {
  (void)state;
  static const char *const cases[][3] = {
      {"--bogus", NULL, NULL},        {"--port", "http", NULL},
      {"--port", "70000", NULL},      {"--heap", "jemalloc", NULL},
      {"--threads", "0", NULL},       {"--sample-ms", "1", NULL},
      {"--max-body", "1X", NULL},     {"stray", NULL, NULL},
      {"--port", NULL, NULL},         {"--worker-memory-limit", "12q", NULL},
      {"--worker-memory-limit", "2T", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = run(cases[i], NULL, out, sizeof out, err, sizeof err);
    if (rc != 2) fail_msg("%s %s: exit %d, not 2", cases[i][0], cases[i][1] ? cases[i][1] : "", rc);
    if (!strstr(err, "leaklab:")) fail_msg("%s: no message on stderr", cases[i][0]);
  }
}

static void bad_environment_values_exit_2(void **state) {
  (void)state;
  static const char *const none[] = {NULL};
  assert_int_equal(run(none, "LEAKLAB_THREADS=many", out, sizeof out, err, sizeof err), 2);
  assert_non_null(strstr(err, "LEAKLAB_THREADS"));
  assert_int_equal(run(none, "LEAKLAB_HEAP=tcmalloc", out, sizeof out, err, sizeof err), 2);
}

static void the_environment_sets_options_and_the_command_line_wins(void **state) {
  (void)state;
  static const char *const env[] = {"LEAKLAB_HEAP=libc", "LEAKLAB_SAMPLE_MS=40",
                                    "LEAKLAB_ADMIN_TOKEN=tok", NULL};
  static const char *const args[] = {"--sample-ms", "30", NULL};
  srv_t *s = srv_start(args, env);
  cJSON *doc = http_json(s, "GET", "/api/stats", NULL, NULL);
  assert_string_equal(jget(doc, "heap/backend")->valuestring, "libc");
  cJSON_Delete(doc);
  doc = http_json(s, "GET", "/api/history?limit=1", NULL, NULL);
  assert_int_equal(jnum(doc, "sample_ms"), 30);
  cJSON_Delete(doc);
  http_resp_t r = http(s, "POST", "/api/flags/reset", NULL, 0, NULL);
  assert_int_equal(r.status, 401);
  http_free(&r);
  assert_int_equal(srv_stop(s), 0);
}

static void sigint_and_sigterm_stop_it_with_status_0(void **state) {
  (void)state;
  srv_t *s = srv_start(NULL, NULL);
  repeat(s, 3, "GET", "/healthz", NULL, 200);
  assert_int_equal(srv_stop(s), 0); /* SIGTERM */
  s = srv_start(NULL, NULL);
  repeat(s, 3, "GET", "/hello", NULL, 200);
  assert_int_equal(srv_stop_with(s, SIGINT), 0);
}

static void a_port_in_use_exits_1(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  char port[16];
  snprintf(port, sizeof port, "%u", ntohs(a.sin_port));
  const char *args[] = {"--port", port, NULL};
  assert_int_equal(run(args, NULL, out, sizeof out, err, sizeof err), 1);
  assert_non_null(strstr(err, "cannot listen"));
  close(fd);
}

static void one_thread_serves_as_well_as_a_pool(void **state) {
  (void)state;
  static const char *const args[] = {"--threads", "1", "--max-conns", "8",
                                     "--timeout", "5", NULL};
  srv_t *s = srv_start(args, NULL);
  repeat(s, 50, "POST", "/echo", "{\"x\":1}", 200);
  assert_int_equal(srv_stop(s), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_prints_every_option_and_exits_0),
      cmocka_unit_test(version_prints_the_version_and_exits_0),
      cmocka_unit_test(bad_options_exit_2_with_a_message),
      cmocka_unit_test(bad_environment_values_exit_2),
      cmocka_unit_test(the_environment_sets_options_and_the_command_line_wins),
      cmocka_unit_test(sigint_and_sigterm_stop_it_with_status_0),
      cmocka_unit_test(a_port_in_use_exits_1),
      cmocka_unit_test(one_thread_serves_as_well_as_a_pool),
  };
  return cmocka_run_group_tests_name("server cli", tests, NULL, NULL);
}

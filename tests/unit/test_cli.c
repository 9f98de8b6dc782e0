/* proc/cli: the command line and its LEAKLAB_* environment equivalents;
 * the command line wins, a bad value is refused with a message naming
 * where it came from. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/err.h"
#include "proc/cli.h"
#include "unit.h"

extern char **environ;

/* Unset every LEAKLAB_* variable: each test starts from the defaults. */
static int clean_env(void **state) {
  (void)state;
  for (;;) {
    char **e = environ;
    while (*e && strncmp(*e, "LEAKLAB_", 8)) e++;
    if (!*e) return 0;
    char name[128];
    size_t n = strcspn(*e, "=");
    if (n >= sizeof name) return -1;
    memcpy(name, *e, n);
    name[n] = '\0';
    unsetenv(name);
  }
}

/* What srv_cli_parse printed on stdout and stderr in the last parse(). */
static char out_text[8192], err_text[1024];

static void slurp(FILE *f, char *dst, size_t cap) {
  rewind(f);
  size_t n = fread(dst, 1, cap - 1, f);
  dst[n] = '\0';
  fclose(f);
}

/* srv_cli_parse on a NULL-terminated list of arguments (argv[0] added),
 * with stdout and stderr captured. */
static int parse_argv(srv_cfg_t *cfg, char **args) {
  static char prog[] = "leaklab";
  char *argv[32] = {prog};
  int argc = 1;
  while (args[argc - 1]) {
    assert_true(argc < 31);
    argv[argc] = args[argc - 1];
    argc++;
  }
  fflush(stdout);
  fflush(stderr);
  FILE *out = tmpfile(), *err = tmpfile();
  assert_non_null(out);
  assert_non_null(err);
  int saved_out = dup(1), saved_err = dup(2);
  dup2(fileno(out), 1);
  dup2(fileno(err), 2);
  int rc = srv_cli_parse(argc, argv, cfg);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  slurp(out, out_text, sizeof out_text);
  slurp(err, err_text, sizeof err_text);
  return rc;
}

#define PARSE(cfg, ...) parse_argv((cfg), (char *[]){__VA_ARGS__, NULL})

static void with_no_option_every_setting_has_its_default(void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_CLI_RUN);
  assert_int_equal(c.port, 8080);
  assert_string_equal(c.bind, "127.0.0.1");
  assert_int_equal(c.threads, 2);
  assert_int_equal(c.heap, LAB_BACKEND_LAB);
  assert_int_equal(c.sample_ms, 250);
  assert_int_equal(c.history, 14400);
  assert_string_equal(c.admin_token, "");
  assert_int_equal(c.max_conns, 1024);
  assert_int_equal(c.timeout_s, 30);
  assert_int_equal(c.request_timeout_s, 10);
  assert_int_equal(c.max_body, 1 << 20);
  assert_false(c.single_process);
  assert_string_equal(c.port_file, "");
  assert_string_equal(err_text, "");
  assert_string_equal(out_text, "");
}

static void every_setting_is_read_from_its_leaklab_variable(void **state) {
  (void)state;
  setenv("LEAKLAB_PORT", "9000", 1);
  setenv("LEAKLAB_BIND", "0.0.0.0", 1);
  setenv("LEAKLAB_THREADS", "4", 1);
  setenv("LEAKLAB_HEAP", "libc", 1);
  setenv("LEAKLAB_SAMPLE_MS", "100", 1);
  setenv("LEAKLAB_HISTORY", "16", 1);
  setenv("LEAKLAB_ADMIN_TOKEN", "s3cret", 1);
  setenv("LEAKLAB_MAX_CONNS", "10", 1);
  setenv("LEAKLAB_TIMEOUT", "0", 1);
  setenv("LEAKLAB_REQUEST_TIMEOUT", "86400", 1);
  setenv("LEAKLAB_MAX_BODY", "2M", 1);
  setenv("LEAKLAB_SINGLE_PROCESS", "yes", 1);
  setenv("LEAKLAB_PORT_FILE", "/tmp/port", 1);
  srv_cfg_t c;
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_CLI_RUN);
  assert_int_equal(c.port, 9000);
  assert_string_equal(c.bind, "0.0.0.0");
  assert_int_equal(c.threads, 4);
  assert_int_equal(c.heap, LAB_BACKEND_LIBC);
  assert_int_equal(c.sample_ms, 100);
  assert_int_equal(c.history, 16);
  assert_string_equal(c.admin_token, "s3cret");
  assert_int_equal(c.max_conns, 10);
  assert_int_equal(c.timeout_s, 0);
  assert_int_equal(c.request_timeout_s, 86400);
  assert_int_equal(c.max_body, 2 << 20);
  assert_true(c.single_process);
  assert_string_equal(c.port_file, "/tmp/port");
}

static void the_command_line_wins_over_the_environment(void **state) {
  (void)state;
  setenv("LEAKLAB_PORT", "9000", 1);
  setenv("LEAKLAB_HEAP", "libc", 1);
  setenv("LEAKLAB_MAX_BODY", "2M", 1);
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--port", "7000", "--heap=lab", "--max-body",
                         "4k"),
                   SRV_CLI_RUN);
  assert_int_equal(c.port, 7000);
  assert_int_equal(c.heap, LAB_BACKEND_LAB);
  assert_int_equal(c.max_body, 4096);
  /* The last of two on the command line wins. */
  assert_int_equal(PARSE(&c, "--port=1", "--port=2"), SRV_CLI_RUN);
  assert_int_equal(c.port, 2);
}

static void sizes_take_a_binary_suffix_up_to_their_maximum(void **state) {
  (void)state;
  srv_cfg_t c;
  struct {
    const char *in;
    size_t want;
  } ok[] = {{"0", 0},           {"512", 512},        {"512k", 512 << 10},
            {"1MiB", 1 << 20},  {"3MB", 3 << 20},    {"1G", 1 << 30},
            {"1073741824", 1 << 30}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    assert_int_equal(PARSE(&c, "--max-body", (char *)ok[i].in), SRV_CLI_RUN);
    assert_int_equal(c.max_body, ok[i].want);
  }
  const char *bad[] = {"2G", "1073741825", "1T", "1.5M", "-1", "M", "1 k",
                       "99999999999999999999", "17179869184G"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(PARSE(&c, "--max-body", (char *)bad[i]), SRV_EINVAL);
    assert_non_null(strstr(err_text, "--max-body"));
  }
}

static void the_single_process_switch_takes_no_value_on_the_command_line(
    void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--single-process"), SRV_CLI_RUN);
  assert_true(c.single_process);
  setenv("LEAKLAB_SINGLE_PROCESS", "1", 1);
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_CLI_RUN);
  assert_true(c.single_process);
  const char *off[] = {"0", "false", "no", ""};
  for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
    setenv("LEAKLAB_SINGLE_PROCESS", off[i], 1);
    assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_CLI_RUN);
    assert_false(c.single_process);
  }
}

static void a_number_out_of_its_range_is_refused_with_the_range(void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--port", "65536"), SRV_EINVAL);
  assert_string_equal(err_text,
                      "leaklab: --port: '65536' is not a whole number from 0 "
                      "to 65535\n");
  assert_int_equal(PARSE(&c, "--threads", "0"), SRV_EINVAL);
  assert_non_null(strstr(err_text, "from 1 to 64"));
  assert_int_equal(PARSE(&c, "--sample-ms", "9"), SRV_EINVAL);
  assert_int_equal(PARSE(&c, "--history", "57601"), SRV_EINVAL);
  assert_int_equal(PARSE(&c, "--port", "80x"), SRV_EINVAL);
  assert_int_equal(PARSE(&c, "--port", "-1"), SRV_EINVAL);
  assert_int_equal(PARSE(&c, "--port", ""), SRV_EINVAL);
  assert_int_equal(PARSE(&c, "--port", "1k"), SRV_EINVAL); /* sizes only */
  assert_int_equal(PARSE(&c, "--port", "18446744073709551617"), SRV_EINVAL);
}

static void a_bad_variable_is_refused_naming_the_variable(void **state) {
  (void)state;
  srv_cfg_t c;
  setenv("LEAKLAB_THREADS", "many", 1);
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_EINVAL);
  assert_string_equal(err_text, "leaklab: LEAKLAB_THREADS: 'many' is not a "
                                "whole number from 1 to 64\n");
  unsetenv("LEAKLAB_THREADS");
  setenv("LEAKLAB_SINGLE_PROCESS", "maybe", 1);
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_EINVAL);
  assert_string_equal(err_text, "leaklab: LEAKLAB_SINGLE_PROCESS: expected "
                                "1/true/yes or 0/false/no, not 'maybe'\n");
}

static void an_unknown_heap_is_refused(void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--heap", "jemalloc"), SRV_EINVAL);
  assert_string_equal(err_text, "leaklab: --heap: heap must be 'lab' or "
                                "'libc', not 'jemalloc'\n");
  setenv("LEAKLAB_HEAP", "LAB", 1);
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_EINVAL);
  assert_non_null(strstr(err_text, "LEAKLAB_HEAP"));
}

static void unknown_options_missing_values_and_stray_arguments_are_refused(
    void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--nope"), SRV_EINVAL);
  assert_non_null(strstr(err_text, "unknown option '--nope'"));
  assert_non_null(strstr(err_text, "Try 'leaklab --help'."));
  assert_int_equal(PARSE(&c, "--port"), SRV_EINVAL);
  assert_non_null(strstr(err_text, "option --port needs a value"));
  assert_int_equal(PARSE(&c, "--port", "80", "extra"), SRV_EINVAL);
  assert_non_null(strstr(err_text, "unexpected argument 'extra'"));
  assert_int_equal(PARSE(&c, "-x"), SRV_EINVAL);
}

static void help_prints_the_usage_with_every_variable_and_exits(void **state) {
  (void)state;
  srv_cfg_t c;
  static const char *const vars[] = {
      "LEAKLAB_PORT",        "LEAKLAB_BIND",      "LEAKLAB_THREADS",
      "LEAKLAB_HEAP",        "LEAKLAB_SAMPLE_MS", "LEAKLAB_HISTORY",
      "LEAKLAB_ADMIN_TOKEN", "LEAKLAB_MAX_CONNS", "LEAKLAB_TIMEOUT",
      "LEAKLAB_REQUEST_TIMEOUT", "LEAKLAB_MAX_BODY",
      "LEAKLAB_SINGLE_PROCESS",  "LEAKLAB_PORT_FILE"};
  assert_int_equal(PARSE(&c, "--help"), SRV_CLI_EXIT);
  assert_true(!strncmp(out_text, "Usage: leaklab", 14));
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    assert_non_null(strstr(out_text, vars[i]));
  assert_non_null(strstr(out_text, "--max-body N"));
  assert_non_null(strstr(out_text, "(default 8080)"));
  assert_string_equal(err_text, "");
  assert_int_equal(PARSE(&c, "-h"), SRV_CLI_EXIT);
  assert_true(!strncmp(out_text, "Usage: leaklab", 14));
  /* Help is answered even after a value that is fine. */
  assert_int_equal(PARSE(&c, "--port", "1", "--help"), SRV_CLI_EXIT);
}

static void version_prints_the_version_and_exits(void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--version"), SRV_CLI_EXIT);
  assert_true(!strncmp(out_text, "leaklab ", 8));
  assert_true(out_text[8] >= '0' && out_text[8] <= '9');
  assert_string_equal(err_text, "");
}

/* The module's invariant: each parse starts over from the defaults. */
static void a_parse_carries_nothing_over_from_the_one_before(void **state) {
  (void)state;
  srv_cfg_t c;
  assert_int_equal(PARSE(&c, "--port", "1", "--single-process",
                         "--admin-token", "t"),
                   SRV_CLI_RUN);
  assert_int_equal(parse_argv(&c, (char *[]){NULL}), SRV_CLI_RUN);
  assert_int_equal(c.port, 8080);
  assert_false(c.single_process);
  assert_string_equal(c.admin_token, "");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, clean_env, clean_env)
static const struct CMUnitTest tests[] = {
    T(with_no_option_every_setting_has_its_default),
    T(every_setting_is_read_from_its_leaklab_variable),
    T(the_command_line_wins_over_the_environment),
    T(sizes_take_a_binary_suffix_up_to_their_maximum),
    T(the_single_process_switch_takes_no_value_on_the_command_line),
    T(a_number_out_of_its_range_is_refused_with_the_range),
    T(a_bad_variable_is_refused_naming_the_variable),
    T(an_unknown_heap_is_refused),
    T(unknown_options_missing_values_and_stray_arguments_are_refused),
    T(help_prints_the_usage_with_every_variable_and_exits),
    T(version_prints_the_version_and_exits),
    T(a_parse_carries_nothing_over_from_the_one_before),
};

UNIT_MAIN("cli", tests)

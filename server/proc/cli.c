/* cli.c - options, environment variables, --help and --version. */
#include "proc/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#ifndef LEAKLAB_VERSION
#define LEAKLAB_VERSION "0.0.0"
#endif

enum {
#define SRV__OPT_ENUM(lname, field, type, meta, def, min, max, env, help)   \
  SRV__OPT_##field,
  SRV_CLI_OPTIONS(SRV__OPT_ENUM)
#undef SRV__OPT_ENUM
  SRV__OPT_COUNT
};

typedef struct srv__opt {
  const char *lname, *meta, *def, *env, *help;
  srv_opt_type_t type;
  unsigned long long min, max;
} srv__opt_t;

static const srv__opt_t srv__opts[SRV__OPT_COUNT] = {
#define SRV__OPT_DEF(lname, field, type, meta, def, min, max, env, help)    \
  {lname, meta, def, env, help, type, min, max},
    SRV_CLI_OPTIONS(SRV__OPT_DEF)
#undef SRV__OPT_DEF
};

void srv_cli_usage(FILE *f) {
  fprintf(f,
          "Usage: leaklab [OPTION]...\n"
          "A long-running HTTP server whose requests allocate through an\n"
          "instrumented heap; memory mistakes are switched on per endpoint\n"
          "through /api/flags while it serves.\n\nOptions:\n");
  for (int i = 0; i < SRV__OPT_COUNT; i++) {
    const srv__opt_t *o = &srv__opts[i];
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", o->lname, o->meta ? " " : "",
             o->meta ? o->meta : "");
    fprintf(f, "  %-24s %s", left, o->help);
    if (o->type != SRV_OPT_FLAG && o->type != SRV_OPT_PORT && o->def[0])
      fprintf(f, " (default %s)", o->def);
    fprintf(f, "\n  %-24s env %s\n", "", o->env);
  }
  fprintf(f, "  %-24s %s\n  %-24s %s\n", "--help", "show this and exit",
          "--version", "show the version and exit");
  fprintf(f, "\nAPI: GET /api/stats, /api/history?since=MS, /api/flags, "
             "/api/leaks?top=N,\n/api/events?since=SEQ, /metrics, /healthz; "
             "PATCH /api/flags {\"echo.leak_tree\": 1};\n"
             "POST /api/flags?echo.leak_tree=0.5; POST /api/flags/reset.\n"
             "SIGHUP replaces the worker gracefully (not with "
             "--single-process).\n"
             "Exit status: 0 on SIGINT/SIGTERM, 1 if it cannot serve, "
             "2 on bad options.\n");
}

/* Parse a number with an optional binary suffix (sizes only). */
static int srv__number(const char *s, bool size, unsigned long long *out) {
  if (!s || *s < '0' || *s > '9') return SRV_EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return SRV_ERANGE;
  if (size && *end) {
    unsigned shift;
    switch (*end) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    default: return SRV_EINVAL;
    }
    end++;
    if (!strcmp(end, "iB") || !strcmp(end, "B")) end += strlen(end);
    if (v > (~0ull >> shift)) return SRV_ERANGE;
    v <<= shift;
  }
  if (*end) return SRV_EINVAL;
  *out = v;
  return SRV_OK;
}

/* Typed stores, one per srv_opt_type_t, chosen by the option table. */
static void srv__store_SRV_OPT_UINT(unsigned *p, unsigned long long n, bool b,
                                    const char *v) {
  (void)b, (void)v;
  *p = (unsigned)n;
}
static void srv__store_SRV_OPT_SIZE(size_t *p, unsigned long long n, bool b,
                                    const char *v) {
  (void)b, (void)v;
  *p = (size_t)n;
}
static void srv__store_SRV_OPT_HEAP(lab_backend_t *p, unsigned long long n,
                                    bool b, const char *v) {
  (void)b, (void)v;
  *p = (lab_backend_t)n;
}
static void srv__store_SRV_OPT_FLAG(bool *p, unsigned long long n, bool b,
                                    const char *v) {
  (void)n, (void)v;
  *p = b;
}
static void srv__store_SRV_OPT_PORT(int *p, unsigned long long n, bool b,
                                    const char *v) {
  (void)b;
  *p = v && *v ? (int)n : -1;
}
static void srv__store_SRV_OPT_STR(const char **p, unsigned long long n,
                                   bool b, const char *v) {
  (void)n, (void)b;
  *p = v ? v : "";
}

/* Store one option's value; `from` names where it came from for errors. */
static int srv__set(srv_cfg_t *cfg, int id, const char *val,
                    const char *from) {
  const srv__opt_t *o = &srv__opts[id];
  unsigned long long n = 0;
  bool b = false;
  switch (o->type) {
  case SRV_OPT_UINT:
  case SRV_OPT_SIZE:
    if (srv__number(val, o->type == SRV_OPT_SIZE, &n) || n < o->min ||
        n > o->max) {
      fprintf(stderr,
              "leaklab: %s: '%s' is not a whole number from %llu to %llu\n",
              from, val ? val : "", o->min, o->max);
      return SRV_EINVAL;
    }
    break;
  case SRV_OPT_HEAP: {
    lab_backend_t be;
    if (lab_backend_parse(val, &be)) {
      fprintf(stderr, "leaklab: %s: heap must be 'lab' or 'libc', not '%s'\n",
              from, val ? val : "");
      return SRV_EINVAL;
    }
    n = be;
    break;
  }
  case SRV_OPT_FLAG:
    if (!val || !strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes"))
      b = true;
    else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") ||
             !*val)
      b = false;
    else {
      fprintf(stderr, "leaklab: %s: expected 1/true/yes or 0/false/no, not '%s'\n",
              from, val);
      return SRV_EINVAL;
    }
    break;
  case SRV_OPT_PORT:
    if (val && *val &&
        (srv__number(val, false, &n) || n < o->min || n > o->max)) {
      fprintf(stderr, "leaklab: %s: '%s' is not a port from %llu to %llu\n",
              from, val, o->min, o->max);
      return SRV_EINVAL;
    }
    break;
  case SRV_OPT_STR:
    break;
  }
  switch (id) {
#define SRV__OPT_STORE(lname, field, type, meta, def, min, max, env, help)  \
  case SRV__OPT_##field:                                                     \
    srv__store_##type(&cfg->field, n, b, val);                               \
    break;
    SRV_CLI_OPTIONS(SRV__OPT_STORE)
#undef SRV__OPT_STORE
  }
  return SRV_OK;
}

int srv_cli_parse(int argc, char **argv, srv_cfg_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < SRV__OPT_COUNT; i++)
    if (srv__set(cfg, i, srv__opts[i].def, "default")) return SRV_EINVAL;
  for (int i = 0; i < SRV__OPT_COUNT; i++) {
    const char *v = getenv(srv__opts[i].env);
    if (v && srv__set(cfg, i, v, srv__opts[i].env)) return SRV_EINVAL;
  }

  enum { OPT_HELP = 1000, OPT_VERSION };
  struct option longs[SRV__OPT_COUNT + 3];
  for (int i = 0; i < SRV__OPT_COUNT; i++)
    longs[i] = (struct option){srv__opts[i].lname,
                               srv__opts[i].type == SRV_OPT_FLAG ? no_argument
                                                                 : required_argument,
                               NULL, 256 + i};
  longs[SRV__OPT_COUNT] = (struct option){"help", no_argument, NULL, OPT_HELP};
  longs[SRV__OPT_COUNT + 1] =
      (struct option){"version", no_argument, NULL, OPT_VERSION};
  longs[SRV__OPT_COUNT + 2] = (struct option){NULL, 0, NULL, 0};

  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    if (c == 'h' || c == OPT_HELP) {
      srv_cli_usage(stdout);
      return SRV_CLI_EXIT;
    }
    if (c == OPT_VERSION) {
      printf("leaklab %s\n", LEAKLAB_VERSION);
      return SRV_CLI_EXIT;
    }
    if (c >= 256 && c < 256 + SRV__OPT_COUNT) {
      char from[64];
      snprintf(from, sizeof from, "--%s", srv__opts[c - 256].lname);
      if (srv__set(cfg, c - 256, optarg, from)) return SRV_EINVAL;
      continue;
    }
    if (optopt >= 256 && optopt < 256 + SRV__OPT_COUNT)
      fprintf(stderr, "leaklab: option --%s needs a value\n",
              srv__opts[optopt - 256].lname);
    else
      fprintf(stderr, "leaklab: unknown option '%s'\n", argv[optind - 1]);
    fprintf(stderr, "Try 'leaklab --help'.\n");
    return SRV_EINVAL;
  }
  if (optind < argc) {
    fprintf(stderr, "leaklab: unexpected argument '%s'\nTry 'leaklab --help'.\n",
            argv[optind]);
    return SRV_EINVAL;
  }
  return SRV_CLI_RUN;
}

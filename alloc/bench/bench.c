/* bench.c - allocator latency under a churning window of live blocks.
 *
 * Each thread keeps a window of WINDOW live blocks; one step frees a random
 * block and allocates a new one in its place (16 B - 1 KiB, one in 64 of
 * 4 - 64 KiB), touching its first and last byte. The window is filled
 * first, then every thread runs the same number of steps, started together
 * by a barrier. The random sequence depends only on the thread index, so
 * every allocator sees the same workload.
 *
 * Built with BENCH_LAB the blocks come from the lab heap (one static call
 * site, backend chosen with --backend); without it from plain malloc/free,
 * which is glibc, or jemalloc/mimalloc under LD_PRELOAD, or ASan.
 *
 * Output, one line:
 *   <name> threads=<n> ns_per_op=<x.x> peak_rss_kib=<y>
 * and in --snapshot mode (lab build only):
 *   snapshot live_blocks=<n> us_per_snapshot=<x.xx>
 *   metadata bytes_per_block=<x.x>
 * Exit status: 0 success, 1 failure while running, 2 bad arguments.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef BENCH_LAB
#include "lab/alloc.h"
#endif

enum {
  WINDOW = 4096,          /* live blocks per thread; a power of two */
  MAX_THREADS = 64,
  SMALL_MIN = 16,         /* usual request sizes, bytes */
  SMALL_MAX = 1024,
  LARGE_MIN = 4 * 1024,   /* one request in LARGE_ONE_IN */
  LARGE_MAX = 64 * 1024,
  LARGE_ONE_IN = 64,      /* a power of two */
  SNAP_BLOCKS = 1000000,  /* --snapshot: live 32-byte blocks */
  SNAP_BLOCK_SIZE = 32,
  SNAP_REPS = 1000,       /* --snapshot: timed repetitions */
  SNAP_SITES_MAX = 4096   /* --snapshot: room for site counters */
};

#define DEFAULT_OPS 2000000ull
#define MAX_OPS 1000000000000ull

/* ---- The allocator under test. ---- */

#ifdef BENCH_LAB
/* One call site for every allocation and free, so per-site accounting costs
 * what it does for a real site and the snapshot sees one busy site. */
static lab_site_t bench_site = {__FILE__, "bench_alloc", "bench", __LINE__, 0};

static inline void *bench_alloc(size_t n) {
  return lab_try_malloc_at(n, &bench_site);
}
static inline void bench_free(void *p) { lab_free_at(p, &bench_site); }
#define BENCH_DEFAULT_NAME "lab"
#else
static inline void *bench_alloc(size_t n) { return malloc(n); }
static inline void bench_free(void *p) { free(p); }
#define BENCH_DEFAULT_NAME "plain"
#endif

/* ---- Per-thread PRNG: splitmix64. ---- */

static inline uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A request size from one random word: its low bits pick small or large,
 * its high 32 bits the size within the range (multiply-shift, no divide). */
static inline size_t draw_size(uint64_t r) {
  uint64_t hi = r >> 32;
  if ((r & (LARGE_ONE_IN - 1)) == 0)
    return LARGE_MIN + (size_t)((hi * (LARGE_MAX - LARGE_MIN + 1)) >> 32);
  return SMALL_MIN + (size_t)((hi * (SMALL_MAX - SMALL_MIN + 1)) >> 32);
}

/* A window slot from the same word, from bits the size does not use. */
static inline size_t draw_slot(uint64_t r) {
  return (size_t)(r >> 6) & (WINDOW - 1);
}

/* Allocate n bytes and touch both ends, so the pages are really used. */
static inline char *alloc_touched(size_t n) {
  char *p = bench_alloc(n);
  if (p != NULL) {
    p[0] = 1;
    p[n - 1] = 1;
  }
  return p;
}

/* ---- The churn workload. ---- */

typedef struct worker {
  pthread_t tid;
  unsigned index;             /* thread number, seeds the PRNG */
  uint64_t ops;               /* timed steps to run */
  pthread_barrier_t *start;   /* all threads leave it together */
  struct timespec t0, t1;     /* around the timed loop */
  int failed;                 /* an allocation returned NULL */
  void *win[WINDOW];          /* the live blocks */
} worker_t;

static void *worker_run(void *arg) {
  worker_t *w = arg;
  uint64_t rng = 0x1234567ull + w->index * 0x9E3779B97F4A7C15ull;
  size_t filled = 0;

  for (; filled < WINDOW; filled++) {
    size_t n = draw_size(splitmix64(&rng));
    w->win[filled] = alloc_touched(n);
    if (w->win[filled] == NULL) {
      w->failed = 1;
      break;
    }
  }

  /* Wait even after a failure, or the others would wait forever. */
  pthread_barrier_wait(w->start);
  clock_gettime(CLOCK_MONOTONIC, &w->t0);
  if (!w->failed) {
    for (uint64_t i = 0; i < w->ops; i++) {
      uint64_t r = splitmix64(&rng);
      size_t slot = draw_slot(r);
      bench_free(w->win[slot]);
      w->win[slot] = alloc_touched(draw_size(r));
      if (w->win[slot] == NULL) {
        w->failed = 1;
        break;
      }
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &w->t1);

  /* Freed by the thread that allocated them, untimed; free(NULL) is fine. */
  for (size_t i = 0; i < filled; i++)
    bench_free(w->win[i]);
  return NULL;
}

static double ts_ns(const struct timespec *t) {
  return (double)t->tv_sec * 1e9 + (double)t->tv_nsec;
}

/* Run the workload on `threads` threads; returns the wall time of the timed
 * part in ns (first start to last end), or a negative value on failure. */
static double run_churn(unsigned threads, uint64_t ops) {
  pthread_barrier_t start;
  worker_t *ws = calloc(threads, sizeof(*ws));
  double first = 0, last = 0, wall = -1;
  unsigned started = 0;
  int err;

  if (ws == NULL) {
    fprintf(stderr, "bench: out of memory for %u workers\n", threads);
    return -1;
  }
  err = pthread_barrier_init(&start, NULL, threads);
  if (err != 0) {
    fprintf(stderr, "bench: pthread_barrier_init: %s\n", strerror(err));
    goto out_free_workers;
  }
  for (; started < threads; started++) {
    worker_t *w = &ws[started];
    w->index = started;
    w->ops = ops;
    w->start = &start;
    err = pthread_create(&w->tid, NULL, worker_run, w);
    if (err != 0) {
      /* The barrier counts on every thread: nothing to do but stop. */
      fprintf(stderr, "bench: pthread_create: %s\n", strerror(err));
      exit(1);
    }
  }
  for (unsigned i = 0; i < threads; i++)
    pthread_join(ws[i].tid, NULL);

  wall = 0;
  for (unsigned i = 0; i < threads; i++) {
    double t0 = ts_ns(&ws[i].t0), t1 = ts_ns(&ws[i].t1);
    if (ws[i].failed) {
      fprintf(stderr, "bench: thread %u: allocation failed\n", i);
      wall = -1;
    }
    if (i == 0 || t0 < first)
      first = t0;
    if (i == 0 || t1 > last)
      last = t1;
  }
  if (wall == 0)
    wall = last - first;

  pthread_barrier_destroy(&start);
out_free_workers:
  free(ws);
  return wall;
}

/* Peak resident set size (VmHWM) in KiB, or -1 if it cannot be read. */
static long peak_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  }
  fclose(f);
  return kib;
}

#ifdef BENCH_LAB
/* ---- Snapshot cost with many live blocks (lab build only). ---- */

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return ts_ns(&t);
}

/* SNAP_BLOCKS lab blocks live (their pointers in a plain malloc'd array,
 * outside the lab heap's accounting), then time lab_stats() plus
 * lab_site_stats(). Returns 0, or 1 on failure. */
static int run_snapshot(void) {
  void **blocks = malloc(sizeof(*blocks) * SNAP_BLOCKS);
  lab_site_stats_t *sites = malloc(sizeof(*sites) * SNAP_SITES_MAX);
  lab_stats_t st;
  size_t made = 0, nsites = 0;
  double t0, t1;
  int rc = 1;

  if (blocks == NULL || sites == NULL) {
    fprintf(stderr, "bench: out of memory for the snapshot arrays\n");
    goto out_free_arrays;
  }
  for (; made < SNAP_BLOCKS; made++) {
    blocks[made] = alloc_touched(SNAP_BLOCK_SIZE);
    if (blocks[made] == NULL) {
      fprintf(stderr, "bench: snapshot: allocation %zu failed\n", made);
      goto out_free_blocks;
    }
  }

  t0 = now_ns();
  for (int i = 0; i < SNAP_REPS; i++) {
    lab_stats(&st);
    nsites = lab_site_stats(sites, SNAP_SITES_MAX);
  }
  t1 = now_ns();
  if (nsites > SNAP_SITES_MAX)
    fprintf(stderr, "bench: warning: %zu sites, only %d copied per snapshot\n",
            nsites, SNAP_SITES_MAX);
  if (st.live_blocks < SNAP_BLOCKS) {
    fprintf(stderr,
            "bench: snapshot: live_blocks=%" PRIu64 ", expected >= %d\n",
            st.live_blocks, SNAP_BLOCKS);
    goto out_free_blocks;
  }

  printf("snapshot live_blocks=%" PRIu64 " us_per_snapshot=%.2f\n",
         st.live_blocks, (t1 - t0) / 1e3 / SNAP_REPS);
  printf("metadata bytes_per_block=%.1f\n",
         (double)st.overhead_bytes / (double)st.live_blocks);
  rc = 0;

out_free_blocks:
  for (size_t i = 0; i < made; i++)
    bench_free(blocks[i]);
out_free_arrays:
  free(sites);
  free(blocks);
  return rc;
}

/* The module's invariant: with everything freed, nothing is live. */
static int check_all_freed(void) {
  lab_stats_t st;
  lab_stats(&st);
  if (st.live_bytes != 0 || st.live_blocks != 0) {
    fprintf(stderr,
            "bench: warning: live_bytes=%" PRIu64 " live_blocks=%" PRIu64
            " after freeing everything\n",
            st.live_bytes, st.live_blocks);
    return 1;
  }
  return 0;
}
#endif /* BENCH_LAB */

/* ---- Command line. ---- */

static void usage(FILE *out) {
  fprintf(out,
          "usage: %s [--threads N] [--ops N] [--name NAME]"
#ifdef BENCH_LAB
          " [--backend lab|libc] [--fill-limit N|whole] [--stacks N]"
          " [--unwind tables|fp|libunwind] [--snapshot]"
#endif
          "\n"
          "  --threads N  worker threads (1..%d, default 1)\n"
          "  --ops N      timed steps per thread (default %llu)\n"
          "  --name NAME  label for the output line (default %s)\n"
#ifdef BENCH_LAB
          "  --backend B  lab heap backend: lab (default) or libc\n"
          "  --fill-limit N  bytes per block filled, poisoned and checked\n"
          "               (default 0: the heap's default, %d; whole: every byte)\n"
          "  --stacks N   record N frames of call stack per allocation (0..%d,\n"
          "               default 0: none)\n"
          "  --unwind U   how stacks are walked: tables (the unwind tables,\n"
          "               cached; default), fp (the frame-pointer chain) or\n"
          "               libunwind (unw_backtrace)\n"
          "  --snapshot   time lab_stats()+lab_site_stats() with %d live "
          "blocks\n"
#endif
          ,
          "bench", MAX_THREADS, DEFAULT_OPS, BENCH_DEFAULT_NAME
#ifdef BENCH_LAB
          ,
          LAB_FILL_DEFAULT, LAB_STACK_DEPTH_MAX, SNAP_BLOCKS
#endif
  );
}

static void die_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "bench: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  usage(stderr);
  exit(2);
}

/* A decimal integer in [min, max], or exit 2 naming the option. */
static uint64_t parse_count(const char *opt, const char *s, uint64_t min,
                            uint64_t max) {
  char *end;
  unsigned long long v;

  if (s == NULL)
    die_usage("%s needs a value", opt);
  if (*s < '0' || *s > '9')
    die_usage("not a number: '%s'", s);
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) {
    fprintf(stderr, "bench: %s must be an integer in %" PRIu64 "..%" PRIu64
                    ", got '%s'\n",
            opt, min, max, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  unsigned threads = 1;
  uint64_t ops = DEFAULT_OPS;
  const char *name = BENCH_DEFAULT_NAME;
  double wall;
  long rss;
#ifdef BENCH_LAB
  lab_config_t cfg = {.backend = LAB_BACKEND_LAB};
  int snapshot = 0, err;
#endif

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--threads") == 0) {
      threads = (unsigned)parse_count(a, v, 1, MAX_THREADS);
      i++;
    } else if (strcmp(a, "--ops") == 0) {
      ops = parse_count(a, v, 1, MAX_OPS);
      i++;
    } else if (strcmp(a, "--name") == 0) {
      if (v == NULL || *v == '\0')
        die_usage("%s needs a non-empty value", a);
      name = v;
      i++;
#ifdef BENCH_LAB
    } else if (strcmp(a, "--backend") == 0) {
      if (v == NULL)
        die_usage("%s needs a value (lab or libc)", a);
      if (lab_backend_parse(v, &cfg.backend) != LAB_OK)
        die_usage("unknown backend '%s' (lab or libc)", v);
      i++;
    } else if (strcmp(a, "--fill-limit") == 0) {
      cfg.fill_limit = v && strcmp(v, "whole") == 0
                           ? LAB_FILL_WHOLE
                           : (size_t)parse_count(a, v, 0, (uint64_t)1 << 40);
      i++;
    } else if (strcmp(a, "--stacks") == 0) {
      cfg.stack_depth = (unsigned)parse_count(a, v, 0, LAB_STACK_DEPTH_MAX);
      i++;
    } else if (strcmp(a, "--unwind") == 0) {
      if (v && strcmp(v, "tables") == 0) cfg.unwind = LAB_UNWIND_TABLES;
      else if (v && strcmp(v, "fp") == 0) cfg.unwind = LAB_UNWIND_FP;
      else if (v && strcmp(v, "libunwind") == 0) cfg.unwind = LAB_UNWIND_LIBUNWIND;
      else die_usage("--unwind takes tables, fp or libunwind, got '%s'", v ? v : "");
      i++;
    } else if (strcmp(a, "--snapshot") == 0) {
      snapshot = 1;
#else
    } else if (strcmp(a, "--backend") == 0 || strcmp(a, "--snapshot") == 0 ||
               strcmp(a, "--fill-limit") == 0 || strcmp(a, "--stacks") == 0 ||
               strcmp(a, "--unwind") == 0) {
      die_usage("%s needs the lab build (lab_bench)", a);
#endif
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      die_usage("unknown argument '%s'", a);
    }
  }

#ifdef BENCH_LAB
  err = lab_init(&cfg);
  if (err != LAB_OK) {
    fprintf(stderr, "bench: lab_init: %s\n", lab_strerror(err));
    return 1;
  }
  if (snapshot) {
    if (run_snapshot() != 0)
      return 1;
    return check_all_freed();
  }
#endif

  wall = run_churn(threads, ops);
  if (wall < 0)
    return 1;
  rss = peak_rss_kib();
  if (rss < 0) {
    fprintf(stderr, "bench: warning: cannot read VmHWM from /proc/self/status\n");
    rss = 0;
  }
  /* Wall time over the steps of ONE thread: with several threads running
   * at once this is the per-thread latency of a step (free + malloc) under
   * concurrency, not the aggregate throughput. */
  printf("%s threads=%u ns_per_op=%.1f peak_rss_kib=%ld\n", name, threads,
         wall / (double)ops, rss);
#ifdef BENCH_LAB
  return check_all_freed();
#else
  return 0;
#endif
}

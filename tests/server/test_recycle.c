/* The supervisor and its workers: recycling under load drops no request,
 * flags, history, counters and events survive every recycle, a request
 * on a keep-alive connection to the old worker is still answered (with
 * Connection: close), a killed worker is replaced and the crash is an
 * event, and --single-process keeps one process. */
#define _GNU_SOURCE /* prlimit */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <curl/curl.h>
#include <cmocka.h>

#include "harness.h"

/* Kills in the kill loop: 50 as the issue asks; fewer under a sanitizer,
 * whose workers take up to a second to start. */
#ifdef LEAKLAB_SANITIZED
#define KILLS 15
#else
#define KILLS 50
#endif

#define BODY                                                                 \
  "{\"name\":\"leaklab\",\"tags\":[\"a\",\"b\",\"c\"],\"n\":[1,2,3,4],"      \
  "\"deep\":{\"x\":{\"y\":true}}}"
#define CLIENTS 4
#define PER_CLIENT 750

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

/* The flags document without its version. */
static char *flag_values(srv_t *s) {
  cJSON *doc = http_json(s, "GET", "/api/flags", NULL, NULL);
  char *text = cJSON_PrintUnformatted(jget(doc, "flags"));
  cJSON_Delete(doc);
  return text;
}

static unsigned history_samples(srv_t *s, uint64_t *first_t, uint64_t *last_t) {
  cJSON *doc = http_json(s, "GET", "/api/history?since=0", NULL, NULL);
  cJSON *samples = jget(doc, "samples"), *x;
  unsigned n = (unsigned)cJSON_GetArraySize(samples);
  uint64_t prev = 0;
  cJSON_ArrayForEach(x, samples) {
    uint64_t t = (uint64_t)jnum(x, "t_ms");
    /* One sampler at a time: the history stays in time order. */
    if (t < prev) fail_msg("history out of order: %llu after %llu",
                           (unsigned long long)t, (unsigned long long)prev);
    prev = t;
  }
  if (first_t) *first_t = n ? (uint64_t)jnum(cJSON_GetArrayItem(samples, 0), "t_ms") : 0;
  if (last_t) *last_t = prev;
  cJSON_Delete(doc);
  return n;
}

typedef struct client {
  srv_t conn;               /* the server, with this client's own handle */
  unsigned n;               /* requests to send */
  bool until_failure;       /* stop at the first failure */
  unsigned ok, failed;      /* 200s, and everything else */
  long first_bad;           /* status of the first failure (0: transport) */
  char why[160];
} client_t;

static void *client_main(void *arg) {
  client_t *c = arg;
  c->conn.curl = curl_easy_init();
  for (unsigned i = 0; i < c->n; i++) {
    http_resp_t r = http(&c->conn, "POST", "/echo", BODY, -1, NULL);
    if (r.status == 200 && strstr(r.body, "\"leaklab\"")) {
      c->ok++;
    } else if (!c->failed++) {
      c->first_bad = r.status;
      snprintf(c->why, sizeof c->why, "%.150s", r.body);
    }
    http_free(&r);
    if (c->failed && c->until_failure) break;
  }
  curl_easy_cleanup(c->conn.curl);
  return NULL;
}

/* Run `clients` keep-alive clients of n requests each; fails the test on
 * any request that is not a 200. */
static void load(unsigned clients, unsigned n) {
  client_t c[CLIENTS];
  pthread_t t[CLIENTS];
  assert_true(clients <= CLIENTS);
  for (unsigned i = 0; i < clients; i++) {
    memset(&c[i], 0, sizeof c[i]);
    c[i].conn = *srv;
    c[i].n = n;
    assert_int_equal(pthread_create(&t[i], NULL, client_main, &c[i]), 0);
  }
  unsigned failed = 0;
  for (unsigned i = 0; i < clients; i++) {
    pthread_join(t[i], NULL);
    if (c[i].failed)
      print_error("client %u: %u of %u failed, first: %ld %s\n", i, c[i].failed,
                  n, c[i].first_bad, c[i].why);
    failed += c[i].failed;
  }
  assert_int_equal(failed, 0);
}

static void recycling_by_requests_under_load_drops_no_request(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 1, \"report.uninit\": 0.25, "
                 "\"guard.budget_bytes\": 1073741824, "
                 "\"guard.recycle_requests\": 200}");
  char *flags0 = flag_values(srv);
  uint64_t since = last_event(srv);
  double pid0 = stat_num(srv, "worker/pid");
  double total0 = stat_num(srv, "requests/total");
  /* The first worker's first sample, which every later worker keeps. */
  uint64_t first0 = 0, last0 = 0;
  unsigned hist0 = 0;
  for (int i = 0; i < 500 && !hist0; i++) {
    if (i) sleep_ms(20);
    hist0 = history_samples(srv, &first0, &last0);
  }
  assert_true(hist0 > 0);

  load(CLIENTS, PER_CLIENT);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t t_loaded = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;

  /* The flags are those set in the first generation. */
  char *flags1 = flag_values(srv);
  assert_string_equal(flags0, flags1);
  free(flags0);
  free(flags1);
  set_flags(srv, "{\"guard.recycle_requests\": 0}");
  /* A successor answers as soon as it listens, a little before the
   * supervisor counts the recycle, and a recycle decided just before the
   * guard went off still completes (under a sanitizer on a busy machine,
   * a successor can take a second to start while its predecessor keeps
   * answering). So the API, the metrics and the events are compared once
   * a pass reads the same recycle count before and after them, with the
   * last successor serving and no other starting. */
  cJSON *st = NULL;
  double recycles = -1, in_metrics = -1;
  unsigned in_events = 0;
  char msg[256] = "";
  for (int i = 0; i < 500 && recycles < 0; i++) {
    if (i) sleep_ms(20);
    cJSON_Delete(st);
    st = http_json(srv, "GET", "/api/stats", NULL, NULL);
    double r = jnum(st, "guards/recycles");
    http_resp_t m = http(srv, "GET", "/metrics", NULL, 0, NULL);
    const char *at = strstr(m.body, "\nleaklab_recycles_total ");
    in_metrics = at ? strtod(at + strlen("\nleaklab_recycles_total "), NULL) : -1;
    assert_non_null(strstr(m.body, "\nleaklab_crashes_total 0\n"));
    http_free(&m);
    in_events = events_of(srv, since, "recycle", msg, sizeof msg);
    cJSON_Delete(st);
    st = http_json(srv, "GET", "/api/stats", NULL, NULL);
    if (jnum(st, "guards/recycles") == r &&
        jnum(st, "worker/generation") == 1 + r &&
        cJSON_IsTrue(jget(st, "worker/serving")) &&
        cJSON_IsFalse(jget(st, "worker/successor_starting")))
      recycles = r;
  }
  /* 3,000 requests at 200 +- 10 % each, plus what a worker answers while
   * its successor starts: about ten recycles, fewer under a sanitizer. */
  print_message("%g recycles\n", recycles);
  if (recycles < 4) fail_msg("only %g recycles", recycles);
  assert_int_equal(jnum(st, "counters/crashes"), 0);
  assert_true(jnum(st, "worker/pid") != pid0);
  assert_int_equal(jnum(st, "pid"), srv->pid); /* the supervisor */
  assert_true(jnum(st, "requests/total") - total0 >= CLIENTS * PER_CLIENT);
  /* At most a limit (220) plus the test's own requests since. */
  assert_true(jnum(st, "worker/requests") < 400);
  cJSON_Delete(st);
  /* Every recycle is an event and counted once, in the API and the
   * metrics. */
  assert_int_equal(in_metrics, recycles);
  assert_int_equal(in_events, recycles);
  assert_non_null(strstr(msg, "guard.recycle_requests"));
  assert_int_equal(events_of(srv, since, "crash", NULL, 0), 0);
  /* One history across the generations, still in time order: the first
   * worker's samples are kept, and the worker serving after the last
   * handover samples into the same history. (How many workers of a
   * 20 ms life got to sample depends on the machine's load: the count is
   * no test.) */
  uint64_t t0 = 0, t1 = 0;
  unsigned hist1 = 0;
  for (int i = 0; i < 500 && t1 <= t_loaded; i++) {
    if (i) sleep_ms(20);
    hist1 = history_samples(srv, &t0, &t1);
  }
  print_message("%u samples before, %u after %g recycles\n", hist0, hist1, recycles);
  assert_int_equal(t0, first0);
  assert_true(t1 > t_loaded);
  assert_true(hist1 > hist0);
}

static void recycling_by_rss_replaces_the_worker_past_the_limit(void **state) {
  (void)state;
  /* A document of ~600 nodes: each leaked tree is tens of kilobytes. */
  char body[8192];
  size_t len = (size_t)snprintf(body, sizeof body, "[");
  for (int i = 0; i < 600 && len < sizeof body - 16; i++)
    len += (size_t)snprintf(body + len, sizeof body - len, "%s%d", i ? "," : "", i);
  snprintf(body + len, sizeof body - len, "]");
  double rss = stat_num(srv, "process/rss_bytes");
  double pid0 = stat_num(srv, "worker/pid");
  uint64_t since = last_event(srv);
  char flags[128];
  snprintf(flags, sizeof flags,
           "{\"echo.leak_tree\": 1, \"guard.recycle_rss_bytes\": %.0f}",
           rss + 8.0 * 1048576);
  set_flags(srv, flags);
  for (unsigned i = 0; i < 20000 && stat_num(srv, "guards/recycles") < 1; i += 10)
    repeat(srv, 10, "POST", "/echo", body, 200);
  set_flags(srv, "{\"echo.leak_tree\": 0, \"guard.recycle_rss_bytes\": 0}");
  assert_true(stat_num(srv, "guards/recycles") >= 1);
  char msg[256];
  assert_true(events_of(srv, since, "recycle", msg, sizeof msg) >= 1);
  assert_non_null(strstr(msg, "guard.recycle_rss_bytes"));
  /* Requests carry on, on a new worker that holds a few trees at most;
   * the old one exits and the OS takes back the megabytes it leaked. */
  repeat(srv, 20, "POST", "/echo", body, 200);
  /* Until the old worker has seen its SIGTERM and quiesced, it may still
   * take a new connection from the shared socket: ask until the answer
   * comes from the new one. */
  cJSON *st = NULL;
  for (int i = 0; i < 500; i++) {
    cJSON_Delete(st);
    st = http_json(srv, "GET", "/api/stats", NULL, NULL);
    if (jnum(st, "worker/pid") != pid0) break;
    sleep_ms(10);
  }
  assert_true(jnum(st, "worker/pid") != pid0);
  assert_true(jnum(st, "heap/live_bytes") < 4.0 * 1048576);
  cJSON_Delete(st);
  int k;
  for (k = 0; k < 1000 && kill((pid_t)pid0, 0) == 0; k++) sleep_ms(10);
  assert_true(k < 1000);
}

static void a_keepalive_request_to_the_old_worker_is_answered_with_connection_close(void **state) {
  (void)state;
  /* This client's connection is to the first worker. */
  cJSON *doc = http_json(srv, "GET", "/api/stats", NULL, NULL);
  double old = jnum(doc, "worker/pid");
  assert_true(cJSON_IsFalse(jget(doc, "worker/successor_starting")));
  cJSON_Delete(doc);
  /* Another client watches the handover. */
  srv_t other = *srv;
  other.curl = curl_easy_init();
  srv_signal(srv, SIGHUP);
  for (int i = 0; i < 2000 && stat_num(&other, "guards/recycles") < 1; i++)
    sleep_ms(5);
  assert_int_equal(stat_num(&other, "guards/recycles"), 1);
  curl_easy_cleanup(other.curl);
  /* The old worker drains: it answers on the open connection, and says
   * it will close it. */
  http_resp_t r = http(srv, "GET", "/api/stats", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  assert_true(http_has_header(&r, "Connection", "close"));
  doc = cJSON_Parse(r.body);
  assert_int_equal(jnum(doc, "worker/pid"), old);
  assert_false(cJSON_IsTrue(jget(doc, "worker/serving")));
  cJSON_Delete(doc);
  http_free(&r);
  /* The next request reconnects, to the new worker. */
  doc = http_json(srv, "GET", "/api/stats", NULL, NULL);
  assert_true(jnum(doc, "worker/pid") != old);
  assert_true(cJSON_IsTrue(jget(doc, "worker/serving")));
  assert_int_equal(jnum(doc, "worker/generation"), 2);
  /* The handover is over. */
  assert_true(cJSON_IsFalse(jget(doc, "worker/successor_starting")));
  cJSON_Delete(doc);
  /* The old worker exits once drained. */
  int i;
  for (i = 0; i < 1000 && kill((pid_t)old, 0) == 0; i++) sleep_ms(10);
  assert_true(i < 1000);
  char msg[256];
  assert_int_equal(events_of(srv, 0, "stop", msg, sizeof msg), 1);
}

static void a_killed_worker_is_replaced_and_the_crash_is_an_event(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 0.5, \"guard.request_scope\": true}");
  char *flags0 = flag_values(srv);
  repeat(srv, 50, "POST", "/echo", BODY, 200);
  double total0 = stat_num(srv, "requests/total");
  double pid0 = stat_num(srv, "worker/pid");
  uint64_t since = last_event(srv);
  assert_int_equal(kill((pid_t)pid0, SIGKILL), 0);
  /* Connections wait in the socket's backlog until the restart (after
   * 100 ms); the client's dead connection is retried. */
  long status = 0;
  for (int i = 0; i < 500 && status != 200; i++) {
    http_resp_t r = http(srv, "GET", "/healthz", NULL, 0, NULL);
    status = r.status;
    http_free(&r);
    if (status != 200) sleep_ms(20);
  }
  assert_int_equal(status, 200);
  cJSON *st = http_json(srv, "GET", "/api/stats", NULL, NULL);
  assert_true(jnum(st, "worker/pid") != pid0);
  assert_int_equal(jnum(st, "worker/generation"), 2);
  assert_int_equal(jnum(st, "counters/crashes"), 1);
  assert_int_equal(jnum(st, "guards/recycles"), 0);
  assert_true(jnum(st, "requests/total") > total0);
  cJSON_Delete(st);
  char msg[256], want[64];
  assert_int_equal(events_of(srv, since, "crash", msg, sizeof msg), 1);
  snprintf(want, sizeof want, "worker %.0f (generation 1) killed by SIGKILL", pid0);
  if (!strstr(msg, want)) fail_msg("crash event: %s", msg);
  char *flags1 = flag_values(srv);
  assert_string_equal(flags0, flags1);
  free(flags0);
  free(flags1);
  repeat(srv, 50, "POST", "/echo", BODY, 200);
}

static void sigterm_under_load_stops_the_supervisor_and_its_worker(void **state) {
  (void)state;
  double worker = stat_num(srv, "worker/pid");
  client_t c;
  memset(&c, 0, sizeof c);
  c.conn = *srv;
  c.n = 100000;
  c.until_failure = true; /* the server going away */
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, client_main, &c), 0);
  sleep_ms(200);
  int rc = srv_stop(srv);
  srv = NULL;
  pthread_join(t, NULL);
  assert_int_equal(rc, 0);
  assert_true(c.ok > 0);
  /* The worker died with the supervisor (its parent reaped it). */
  assert_true(kill((pid_t)worker, 0) != 0);
}

/* The pid of the worker answering once it is no longer `pid`: asked up to
 * `tries` times, `gap_ms` apart (requests that fail on a dead worker's
 * connection are retried); `pid` itself if it never changed. */
static double next_worker(srv_t *s, double pid, int tries, unsigned gap_ms) {
  double now = pid;
  for (int i = 0; i < tries && now == pid; i++) {
    http_resp_t r = http(s, "GET", "/api/stats", NULL, 0, NULL);
    if (r.status == 200) {
      cJSON *st = cJSON_Parse(r.body);
      now = jnum(st, "worker/pid");
      cJSON_Delete(st);
    }
    http_free(&r);
    if (now == pid) sleep_ms(gap_ms);
  }
  return now;
}

/* A stopped worker (SIGSTOP: what a deadlock looks like from outside)
 * misses its heartbeat; the supervisor starts its successor, then kills
 * it, within the timeout and a handover. */
static void a_stopped_worker_is_replaced_within_the_worker_timeout(void **state) {
  (void)state;
  static const char *const args[] = {"--worker-timeout", "1", NULL};
  srv_t *s = srv_start(args, NULL);
  set_flags(s, "{\"echo.leak_tree\": 0.5}");
  char *flags0 = flag_values(s);
  repeat(s, 20, "POST", "/echo", BODY, 200);
  double pid0 = stat_num(s, "worker/pid");
  uint64_t since = last_event(s);
  assert_int_equal(kill((pid_t)pid0, SIGSTOP), 0);
  uint64_t t0 = mono_ms();
  /* The client's keep-alive connection is the stopped worker's: it fails
   * when that worker is killed, and the retry reaches the successor. */
  double pid1 = next_worker(s, pid0, 300, 20);
  uint64_t took = mono_ms() - t0;
  print_message("replaced in %llu ms\n", (unsigned long long)took);
  assert_true(pid1 != pid0);
  /* 1 s of timeout, a tick, and a handover (a second under a sanitizer). */
  assert_true(took < 4000);
  cJSON *st = http_json(s, "GET", "/api/stats", NULL, NULL);
  assert_int_equal(jnum(st, "counters/hangs"), 1);  /* counted at detection */
  assert_int_equal(jnum(st, "counters/crashes"), 0);
  assert_int_equal(jnum(st, "guards/recycles"), 0);
  assert_int_equal(jnum(st, "worker/generation"), 2);
  cJSON_Delete(st);
  /* The successor answers as soon as it listens, a little before the
   * supervisor makes the handover and logs it. */
  char msg[256] = "";
  unsigned hung = 0;
  for (int i = 0; i < 200 && (hung = events_of(s, since, "hung", msg, sizeof msg)) < 2; i++)
    sleep_ms(10);
  assert_int_equal(hung, 2);
  if (!strstr(msg, "replaced by worker") || !strstr(msg, "killed"))
    fail_msg("hung event: %s", msg);
  /* The stopped worker is gone, reaped by the supervisor. */
  for (int i = 0; i < 100 && kill((pid_t)pid0, 0) == 0; i++) sleep_ms(20);
  assert_true(kill((pid_t)pid0, 0) != 0);
  char *flags1 = flag_values(s);
  assert_string_equal(flags0, flags1);
  free(flags0);
  free(flags1);
  repeat(s, 20, "POST", "/echo", BODY, 200);
  assert_int_equal(srv_stop(s), 0);
}

/* A hung worker whose successor cannot start (its heap cannot map: the
 * supervisor's address space is capped, as a machine short of memory
 * would) is not left serving nobody: the supervisor retries with the
 * crash-loop backoff, and the first successor that starts replaces it. */
static void a_hung_worker_whose_successors_fail_is_replaced_once_one_starts(void **state) {
  (void)state;
#ifdef LEAKLAB_SANITIZED
  /* A sanitizer's runtime maps terabytes up front: no cap fails only the
   * worker's heap. */
  skip();
#endif
  static const char *const args[] = {"--worker-timeout", "1", NULL};
  srv_t *s = srv_start(args, NULL);
  repeat(s, 5, "POST", "/echo", BODY, 200);
  double pid0 = stat_num(s, "worker/pid");
  uint64_t since = last_event(s);
  /* The soft limit only, so that it can be lifted without privilege. */
  struct rlimit old;
  assert_int_equal(prlimit(s->pid, RLIMIT_AS, NULL, &old), 0);
  struct rlimit cap = {100u << 20, old.rlim_max};
  assert_int_equal(prlimit(s->pid, RLIMIT_AS, &cap, NULL), 0);
  assert_int_equal(kill((pid_t)pid0, SIGSTOP), 0);
  /* The outage: the timeout, then successors failing for two seconds. */
  sleep_ms(3000);
  assert_int_equal(prlimit(s->pid, RLIMIT_AS, &old, NULL), 0);
  uint64_t t0 = mono_ms();
  double pid1 = next_worker(s, pid0, 400, 20);
  uint64_t took = mono_ms() - t0;
  print_message("replaced %llu ms after the cap was lifted\n", (unsigned long long)took);
  assert_true(pid1 != pid0);
  /* The backoff had reached 1.6 s at most, and a handover. */
  assert_true(took < 6000);
  /* Each failed successor was a crash event, and there were retries
   * before the cap was lifted. */
  char msg[256] = "";
  unsigned failed = events_of(s, since, "crash", msg, sizeof msg);
  print_message("%u successors failed; the last: %s\n", failed, msg);
  assert_true(failed >= 2);
  if (!strstr(msg, "before it served")) fail_msg("crash event: %s", msg);
  for (int i = 0; i < 100 && kill((pid_t)pid0, 0) == 0; i++) sleep_ms(20);
  assert_true(kill((pid_t)pid0, 0) != 0);
  repeat(s, 5, "POST", "/echo", BODY, 200);
  assert_int_equal(srv_stop(s), 0);
}

/* A client that sends requests until told to stop, counting answers. */
typedef struct pounder {
  srv_t conn;
  _Atomic bool stop;
  unsigned ok, failed;
} pounder_t;

static void *pounder_main(void *arg) {
  pounder_t *p = arg;
  p->conn.curl = curl_easy_init();
  while (!atomic_load(&p->stop)) {
    http_resp_t r = http(&p->conn, "POST", "/echo", BODY, -1, NULL);
    if (r.status == 200) p->ok++;
    else p->failed++;
    http_free(&r);
  }
  curl_easy_cleanup(p->conn.curl);
  return NULL;
}

/* The worker SIGKILLed again and again under load, each time once its
 * successor has served a little: every one is replaced, the restart delay
 * does not grow (these are not a crash loop), and flags, counters and the
 * history survive them all. */
static void a_worker_killed_again_and_again_under_load_is_always_replaced(void **state) {
  (void)state;
  static const char *const args[] = {"--sample-ms", "50", NULL};
  srv_t *s = srv_start(args, NULL);
  set_flags(s, "{\"echo.leak_tree\": 0.5, \"guard.request_scope\": true}");
  char *flags0 = flag_values(s);
  pounder_t p;
  memset(&p, 0, sizeof p);
  p.conn = *s;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, pounder_main, &p), 0);
  uint64_t worst = 0;
  double total = stat_num(s, "requests/total");
  for (int k = 0; k < KILLS; k++) {
    double pid = stat_num(s, "worker/pid");
    assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
    uint64_t t0 = mono_ms();
    double now_pid = next_worker(s, pid, 500, 10);
    assert_true(now_pid != pid);
    uint64_t took = mono_ms() - t0;
    if (took > worst) worst = took;
    /* Let the successor serve past SRV_SUPER_STABLE_MS (250 ms). */
    sleep_ms(300);
    double t1 = stat_num(s, "requests/total");
    assert_true(t1 >= total); /* lifetime counters never go back */
    total = t1;
  }
  atomic_store(&p.stop, true);
  pthread_join(t, NULL);
  print_message("%d kills, slowest replacement %llu ms, %u answered, %u failed\n",
                KILLS, (unsigned long long)worst, p.ok, p.failed);
  /* A backoff that doubled with every kill would reach 5 s. */
  assert_true(worst < 2000);
  assert_true(p.ok > 0);
  cJSON *st = http_json(s, "GET", "/api/stats", NULL, NULL);
  assert_int_equal(jnum(st, "counters/crashes"), KILLS);
  assert_int_equal(jnum(st, "worker/generation"), KILLS + 1);
  cJSON_Delete(st);
  char *flags1 = flag_values(s);
  assert_string_equal(flags0, flags1);
  free(flags0);
  free(flags1);
  uint64_t first = 0, last = 0;
  assert_true(history_samples(s, &first, &last) > 0);
  repeat(s, 20, "POST", "/echo", BODY, 200);
  assert_int_equal(srv_stop(s), 0);
}

/* A request that never leaves its handler (session.deadlock: a lock
 * taken twice) while the worker's other threads run. The worker is
 * replaced after --worker-timeout from when the handler began, as a
 * stopped worker is, not after twice that. */
static void *post_session(void *arg) {
  srv_t conn = *(srv_t *)arg;
  conn.curl = curl_easy_init();
  http_resp_t r = http(&conn, "POST", "/session", "{\"user\": \"ada\"}", -1, NULL);
  http_free(&r);
  curl_easy_cleanup(conn.curl);
  return NULL;
}

static void a_request_stuck_in_its_handler_is_replaced_after_the_timeout(void **state) {
  (void)state;
#ifdef LEAKLAB_SANITIZED
  skip(); /* TSan reports the double lock and stops the worker itself */
#endif
  static const char *const args[] = {"--worker-timeout", "3", NULL};
  srv_t *s = srv_start(args, NULL);
  repeat(s, 3, "POST", "/session", "{\"user\": \"ada\"}", 201);
  double pid0 = stat_num(s, "worker/pid");
  uint64_t since = last_event(s);
  set_flags(s, "{\"session.deadlock\": 1}");
  pthread_t t;
  uint64_t t0 = mono_ms();
  assert_int_equal(pthread_create(&t, NULL, post_session, s), 0);
  double pid1 = next_worker(s, pid0, 600, 20);
  uint64_t took = mono_ms() - t0;
  print_message("replaced %llu ms after the request entered its handler\n",
                (unsigned long long)took);
  assert_true(pid1 != pid0);
  /* 3 s of timeout, a heartbeat and a supervisor tick, and a handover;
   * not 3 s for the heartbeat to stop and 3 s more after it. */
  assert_true(took >= 3000);
  assert_true(took < 5000);
  pthread_join(t, NULL);
  char msg[256] = "";
  for (int i = 0; i < 200 && events_of(s, since, "hung", msg, sizeof msg) < 2; i++) sleep_ms(10);
  if (!strstr(msg, "replaced by worker")) fail_msg("hung event: %s", msg);
  set_flags(s, "{\"session.deadlock\": 0}");
  repeat(s, 3, "POST", "/session", "{\"user\": \"ada\"}", 201);
  assert_int_equal(srv_stop(s), 0);
}

/* A worker whose heartbeat stops only while it is stopped is not
 * replaced when it comes back in time. */
static void a_worker_stopped_shorter_than_the_timeout_is_kept(void **state) {
  (void)state;
  static const char *const args[] = {"--worker-timeout", "3", NULL};
  srv_t *s = srv_start(args, NULL);
  double pid0 = stat_num(s, "worker/pid");
  assert_int_equal(kill((pid_t)pid0, SIGSTOP), 0);
  sleep_ms(1000);
  assert_int_equal(kill((pid_t)pid0, SIGCONT), 0);
  repeat(s, 20, "GET", "/hello", NULL, 200);
  assert_int_equal(stat_num(s, "worker/pid"), pid0);
  assert_int_equal(stat_num(s, "counters/hangs"), 0);
  assert_int_equal(srv_stop(s), 0);
}

static void single_process_is_one_process_and_does_not_recycle(void **state) {
  (void)state;
  static const char *const args[] = {"--single-process", NULL};
  srv_t *s = srv_start(args, NULL);
  cJSON *st = http_json(s, "GET", "/api/stats", NULL, NULL);
  assert_int_equal(jnum(st, "pid"), s->pid);
  assert_int_equal(jnum(st, "worker/pid"), s->pid);
  assert_int_equal(jnum(st, "worker/generation"), 1);
  cJSON_Delete(st);
  set_flags(s, "{\"guard.recycle_requests\": 10, \"guard.recycle_rss_bytes\": 1}");
  repeat(s, 100, "POST", "/echo", BODY, 200);
  sleep_ms(100);
  assert_int_equal(stat_num(s, "guards/recycles"), 0);
  assert_int_equal(stat_num(s, "worker/pid"), s->pid);
  /* Nobody to hand over to: asking is a 409 that changes nothing. */
  long status = 0;
  cJSON *doc = http_json(s, "POST", "/api/recycle", NULL, &status);
  assert_int_equal(status, 409);
  assert_non_null(strstr(jget(doc, "error")->valuestring, "--single-process"));
  cJSON_Delete(doc);
  assert_int_equal(stat_num(s, "worker/pid"), s->pid);
  assert_int_equal(srv_stop(s), 0);
}

/* POST /api/recycle is a graceful handover, as SIGHUP is, said so in the
 * event; it needs the admin token when there is one. */
static void post_api_recycle_replaces_the_worker_gracefully(void **state) {
  (void)state;
  static const char *const args[] = {"--admin-token", "sesame", NULL};
  srv_t *s = srv_start(args, NULL);
  double pid0 = stat_num(s, "worker/pid");
  uint64_t since = last_event(s);
  long status = 0;
  cJSON *doc = http_json(s, "POST", "/api/recycle", NULL, &status);
  assert_int_equal(status, 401);
  cJSON_Delete(doc);
  http_resp_t r = http(s, "POST", "/api/recycle", NULL, 0,
                       (const char *const[]){"Authorization: Bearer sesame", NULL});
  assert_int_equal(r.status, 202);
  http_free(&r);
  char msg[256] = "";
  for (int i = 0; i < 500 && !events_of(s, since, "recycle", msg, sizeof msg); i++)
    sleep_ms(10);
  if (!strstr(msg, "asked for by POST /api/recycle")) fail_msg("recycle event: %s", msg);
  double pid1 = next_worker(s, pid0, 500, 10);
  assert_true(pid1 != pid0);
  assert_int_equal(stat_num(s, "guards/recycles"), 1);
  assert_int_equal(stat_num(s, "counters/crashes"), 0);
  assert_int_equal(srv_stop(s), 0);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, start, stop)
  const struct CMUnitTest tests[] = {
      T(recycling_by_requests_under_load_drops_no_request),
      T(recycling_by_rss_replaces_the_worker_past_the_limit),
      T(a_keepalive_request_to_the_old_worker_is_answered_with_connection_close),
      T(a_killed_worker_is_replaced_and_the_crash_is_an_event),
      cmocka_unit_test_setup(sigterm_under_load_stops_the_supervisor_and_its_worker, start),
      cmocka_unit_test(a_stopped_worker_is_replaced_within_the_worker_timeout),
      cmocka_unit_test(a_hung_worker_whose_successors_fail_is_replaced_once_one_starts),
      cmocka_unit_test(a_request_stuck_in_its_handler_is_replaced_after_the_timeout),
      cmocka_unit_test(a_worker_stopped_shorter_than_the_timeout_is_kept),
      cmocka_unit_test(a_worker_killed_again_and_again_under_load_is_always_replaced),
      cmocka_unit_test(single_process_is_one_process_and_does_not_recycle),
      cmocka_unit_test(post_api_recycle_replaces_the_worker_gracefully),
  };
#undef T
  return cmocka_run_group_tests_name("server recycling", tests, NULL, NULL);
}

/* Every allocation carries its call stack: /api/stacks lists them with
 * symbolized frames, /api/leaks rows carry their site's, and a stack's
 * figures add up to its site's. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>
#include <cmocka.h>

#include "harness.h"

/* The frames recorded per allocation in the runs with stacks on. */
#define STACK_DEPTH 16
#define STACK_DEPTH_ARG "16"
#define BODY "{\"name\":\"leaklab\",\"tags\":[\"a\",\"b\"],\"deep\":{\"x\":{\"y\":true}}}"

static srv_t *srv;

static int start(void **state) {
  const char *const *args = *state;
  srv = srv_start(args, NULL);
  return 0;
}

static int stop(void **state) {
  (void)state;
  int rc = srv_stop(srv);
  srv = NULL;
  return rc == 0 ? 0 : -1;
}

/* The index of the first frame of `frames` whose function starts with
 * `prefix`, at or after `from`; -1 if none. */
static int frame_index(cJSON *frames, const char *prefix, int from) {
  int i = 0;
  cJSON *f;
  cJSON_ArrayForEach(f, frames) {
    cJSON *fn = cJSON_GetObjectItem(f, "function");
    if (i >= from && cJSON_IsString(fn) && !strncmp(fn->valuestring, prefix, strlen(prefix)))
      return i;
    i++;
  }
  return -1;
}

static void a_leaked_json_tree_is_charged_to_stacks_through_cJSON_Parse(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 20, "POST", "/echo", BODY, 200);
  uint64_t site_live = site_bytes(srv, "echo.tree");
  assert_true(site_live > 0);
  cJSON *doc = http_json(srv, "GET", "/api/stacks?top=100000", NULL, NULL);
  assert_string_equal(jget(doc, "order")->valuestring, "live");
  assert_int_equal((uint64_t)jnum(doc, "depth"), STACK_DEPTH);
  uint64_t stacks_live = 0;
  int through = 0, nstacks = 0;
  cJSON *s;
  cJSON_ArrayForEach(s, jget(doc, "stacks")) {
    if (strcmp(jget(s, "site")->valuestring, "echo.tree")) continue;
    nstacks++;
    stacks_live += (uint64_t)jnum(s, "bytes");
    assert_string_equal(jget(s, "route")->valuestring, "/echo");
    cJSON *frames = jget(s, "frames");
    /* The parser's frames, then the handler that called it. */
    int parse = frame_index(frames, "cJSON_Parse", 0);
    if (parse >= 0 && frame_index(frames, "srv_demo_echo", parse + 1) > parse) through++;
    cJSON *f0 = cJSON_GetArrayItem(frames, 0);
    assert_non_null(strstr(jget(f0, "module")->valuestring, "cjson"));
  }
  /* cJSON allocates nodes and strings from several places. */
  assert_true(nstacks >= 2);
  assert_int_equal(through, nstacks);
  assert_int_equal(stacks_live, site_live);
  cJSON_Delete(doc);
}

static void leak_rows_carry_their_sites_stacks_with_file_and_line(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 5, "POST", "/echo", BODY, 200);
  cJSON *site = leak_site(srv, "echo.tree");
  assert_non_null(site);
  cJSON *stacks = jget(site, "stacks");
  assert_true(cJSON_GetArraySize(stacks) >= 1);
  uint64_t sum = 0, prev = UINT64_MAX;
  cJSON *s;
  cJSON_ArrayForEach(s, stacks) {
    uint64_t b = (uint64_t)jnum(s, "bytes");
    assert_true(b <= prev); /* biggest first */
    prev = b;
    sum += b;
    cJSON *frames = jget(s, "frames");
    int echo = frame_index(frames, "srv_demo_echo", 0);
    assert_true(echo >= 0);
    cJSON *f = cJSON_GetArrayItem(frames, echo);
    assert_string_equal(jget(f, "file")->valuestring, "demo.c");
    assert_true(jnum(f, "line") > 0);
    assert_string_equal(jget(f, "module")->valuestring, "leaklab");
  }
  assert_true(sum <= (uint64_t)jnum(site, "bytes"));
  cJSON_Delete(site);
}

static void stacks_by_allocation_list_what_was_freed_too(void **state) {
  (void)state;
  repeat(srv, 5, "POST", "/echo", BODY, 200); /* leak_tree off: all freed */
  cJSON *live = http_json(srv, "GET", "/api/stacks?top=100000", NULL, NULL);
  cJSON *all = http_json(srv, "GET", "/api/stacks?top=100000&order=allocs", NULL, NULL);
  assert_string_equal(jget(all, "order")->valuestring, "allocs");
  int tree_live = 0, tree_all = 0;
  double prev = 1e300;
  cJSON *s;
  cJSON_ArrayForEach(s, jget(live, "stacks")) tree_live += !strcmp(jget(s, "site")->valuestring, "echo.tree");
  cJSON_ArrayForEach(s, jget(all, "stacks")) {
    tree_all += !strcmp(jget(s, "site")->valuestring, "echo.tree");
    assert_true(jnum(s, "total_bytes") <= prev);
    prev = jnum(s, "total_bytes");
  }
  assert_int_equal(tree_live, 0);
  assert_true(tree_all >= 2);
  cJSON_Delete(live);
  cJSON_Delete(all);
}

static void with_stacks_off_each_site_stands_alone(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 5, "POST", "/echo", BODY, 200);
  cJSON *doc = http_json(srv, "GET", "/api/stacks?top=100000", NULL, NULL);
  assert_int_equal((uint64_t)jnum(doc, "depth"), 0);
  int tree = 0;
  cJSON *s;
  cJSON_ArrayForEach(s, jget(doc, "stacks")) {
    cJSON *frames = jget(s, "frames");
    assert_int_equal(cJSON_GetArraySize(frames), 1);
    if (strcmp(jget(s, "site")->valuestring, "echo.tree")) continue;
    tree++;
    assert_int_equal((uint64_t)jnum(s, "bytes"), site_bytes(srv, "echo.tree"));
    assert_string_equal(jget(cJSON_GetArrayItem(frames, 0), "site")->valuestring, "echo.tree");
  }
  assert_int_equal(tree, 1);
  cJSON_Delete(doc);
}

/* Every live byte is in the heap profile, with stacks or without (a
 * block without a stack is a one-frame sample at its site). */
static void the_heap_profile_holds_every_live_byte(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  repeat(srv, 5, "POST", "/echo", BODY, 200);
  double live = stat_num(srv, "heap/live_bytes"), blocks = stat_num(srv, "heap/live_blocks");
  http_resp_t r = http(srv, "GET", "/debug/pprof/heap?debug=1", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  unsigned long long objects = 0, bytes = 0;
  assert_int_equal(sscanf(r.body, "heap profile: %llu: %llu", &objects, &bytes), 2);
  assert_true(live > 0);
  assert_int_equal(bytes, live);
  assert_int_equal(objects, blocks);
  assert_non_null(strstr(r.body, "site=echo.tree"));
  http_free(&r);
}

/* A body nested 8 deep, arrays and objects as the bits of `shape` say:
 * each shape parses through its own call stack in cJSON. */
static void nested_body(unsigned shape, char *out, size_t cap) {
  size_t n = 0;
  for (int k = 0; k < 8; k++) n += (size_t)snprintf(out + n, cap - n, (shape >> k & 1) ? "[" : "{\"k\":");
  n += (size_t)snprintf(out + n, cap - n, "\"leaf\"");
  for (int k = 7; k >= 0; k--) n += (size_t)snprintf(out + n, cap - n, (shape >> k & 1) ? "]" : "}");
}

/* Reads of the observer, in a loop, until told to stop. */
typedef struct reader {
  srv_t conn;
  _Atomic int stop;
  unsigned reads, failed;
  _Atomic unsigned reads_done; /* reads, as the other thread sees them */
} reader_t;

static void *read_listings(void *arg) {
  reader_t *rd = arg;
  rd->conn.curl = curl_easy_init();
  static const char *const paths[] = {"/api/stacks?top=100000", "/debug/pprof/heap",
                                      "/api/leaks?top=1000", "/metrics"};
  while (!atomic_load(&rd->stop)) {
    http_resp_t r = http(&rd->conn, "GET", paths[rd->reads % 4], NULL, 0, NULL);
    if (r.status != 200) rd->failed++;
    rd->reads++;
    atomic_store(&rd->reads_done, rd->reads);
    http_free(&r);
  }
  curl_easy_cleanup(rd->conn.curl);
  return NULL;
}

static void reading_the_heap_changes_nothing_it_reads(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  char body[256];
  for (unsigned shape = 0; shape < 256; shape++) {
    nested_body(shape, body, sizeof body);
    http_resp_t r = http(srv, "POST", "/echo", body, -1, NULL);
    assert_int_equal(r.status, 200);
    http_free(&r);
  }
  set_flags(srv, "{\"echo.leak_tree\": 0}");
  double live = stat_num(srv, "heap/live_bytes");
  /* The listing's own figures are the heap's, not the heap plus the
   * listing. */
  cJSON *doc = http_json(srv, "GET", "/api/stacks?top=100000", NULL, NULL);
  assert_true(cJSON_GetArraySize(jget(doc, "stacks")) >= 64);
  assert_int_equal(jnum(doc, "live_bytes"), live);
  cJSON_Delete(doc);
  http_resp_t r = http(srv, "GET", "/debug/pprof/heap", NULL, 0, NULL);
  assert_int_equal(r.status, 200);
  http_free(&r);
  assert_int_equal(stat_num(srv, "heap/live_bytes"), live);
  /* A budget a little above the heap: the reads never push the app over. */
  char flags[96];
  snprintf(flags, sizeof flags, "{\"guard.budget_bytes\": %.0f}", live * 1.3);
  set_flags(srv, flags);
  reader_t rd = {.conn = *srv};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, read_listings, &rd), 0);
  /* 400 requests at least, and on until every listing was read twice
   * (the first read symbolizes, and takes longest). */
  int sent = 0;
  for (; sent < 400 || (atomic_load(&rd.reads_done) < 8 && sent < 200000); sent++) {
    r = http(srv, "POST", "/echo", BODY, -1, NULL);
    if (r.status != 200) fail_msg("request %d answered %ld: %s", sent, r.status, r.body);
    http_free(&r);
  }
  atomic_store(&rd.stop, 1);
  pthread_join(t, NULL);
  print_message("%u reads beside %d requests\n", rd.reads, sent);
  assert_int_equal(rd.failed, 0);
  assert_true(rd.reads >= 8);
  set_flags(srv, "{\"guard.budget_bytes\": 0}");
}

/* The first N of a listing are the first N of the whole, in both orders,
 * and both say how many stacks there are in all. */
static void a_short_listing_is_the_head_of_the_whole_one(void **state) {
  (void)state;
  set_flags(srv, "{\"echo.leak_tree\": 0.5}");
  char body[256];
  for (unsigned shape = 0; shape < 200; shape++) {
    nested_body(shape * 7u, body, sizeof body);
    http_resp_t r = http(srv, "POST", "/echo", body, -1, NULL);
    assert_int_equal(r.status, 200);
    http_free(&r);
  }
  set_flags(srv, "{\"echo.leak_tree\": 0}");
  static const char *const orders[] = {"live", "allocs"};
  for (int o = 0; o < 2; o++) {
    char path[64];
    snprintf(path, sizeof path, "/api/stacks?top=100000&order=%s", orders[o]);
    cJSON *all = http_json(srv, "GET", path, NULL, NULL);
    snprintf(path, sizeof path, "/api/stacks?top=7&order=%s", orders[o]);
    cJSON *head = http_json(srv, "GET", path, NULL, NULL);
    int nall = cJSON_GetArraySize(jget(all, "stacks"));
    assert_true(nall > 20);
    assert_int_equal(jnum(all, "stacks_total"), nall);
    assert_int_equal(jnum(head, "stacks_total"), nall);
    assert_int_equal(cJSON_GetArraySize(jget(head, "stacks")), 7);
    for (int i = 0; i < 7; i++)
      assert_int_equal(jnum(cJSON_GetArrayItem(jget(head, "stacks"), i), "id"),
                       jnum(cJSON_GetArrayItem(jget(all, "stacks"), i), "id"));
    cJSON_Delete(all);
    cJSON_Delete(head);
  }
}

/* A profile over N seconds asked on a connection of its own. */
typedef struct waiting {
  srv_t conn;
  long status;
} waiting_t;

static void *ask_profile(void *arg) {
  waiting_t *w = arg;
  w->conn.curl = curl_easy_init();
  http_resp_t r = http(&w->conn, "GET", "/debug/pprof/heap?seconds=2", NULL, 0, NULL);
  w->status = r.status;
  http_free(&r);
  curl_easy_cleanup(w->conn.curl);
  return NULL;
}

static void a_profile_over_seconds_holds_no_thread_while_it_waits(void **state) {
  (void)state;
  /* One daemon thread: a profile that slept in its handler would leave
   * nobody to answer the others. */
  set_flags(srv, "{\"echo.leak_tree\": 1}");
  waiting_t w = {*srv, 0};
  pthread_t t;
  uint64_t t0 = mono_ms();
  assert_int_equal(pthread_create(&t, NULL, ask_profile, &w), 0);
  unsigned answered = 0;
  while (mono_ms() - t0 < 1500) {
    uint64_t t1 = mono_ms();
    http_resp_t r = http(srv, "POST", "/echo", BODY, -1, NULL);
    assert_int_equal(r.status, 200);
    http_free(&r);
    assert_true(mono_ms() - t1 < 1000);
    answered++;
  }
  pthread_join(t, NULL);
  print_message("%u answered while the profile waited %llu ms\n", answered,
                (unsigned long long)(mono_ms() - t0));
  assert_int_equal(w.status, 200);
  assert_true(mono_ms() - t0 >= 2000);
  assert_true(answered > 10);
}

int main(void) {
  static const char *const on[] = {"--stacks", STACK_DEPTH_ARG, NULL};
  static const char *const off[] = {NULL}; /* the default: no stacks */
  static const char *const one[] = {"--stacks", STACK_DEPTH_ARG, "--threads", "1", NULL};
#define T(name, args) cmocka_unit_test_prestate_setup_teardown(name, start, stop, (void *)(args))
  const struct CMUnitTest tests[] = {
      T(a_leaked_json_tree_is_charged_to_stacks_through_cJSON_Parse, on),
      T(leak_rows_carry_their_sites_stacks_with_file_and_line, on),
      T(stacks_by_allocation_list_what_was_freed_too, on),
      T(with_stacks_off_each_site_stands_alone, off),
      T(reading_the_heap_changes_nothing_it_reads, on),
      T(the_heap_profile_holds_every_live_byte, on),
      T(a_short_listing_is_the_head_of_the_whole_one, on),
      T(the_heap_profile_holds_every_live_byte, off),
      T(a_profile_over_seconds_holds_no_thread_while_it_waits, one),
  };
  return cmocka_run_group_tests_name("server stacks", tests, NULL, NULL);
}

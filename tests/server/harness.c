/* harness.c - the server under test, as a child process, and HTTP. */
#define _GNU_SOURCE
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#ifndef LEAKLAB_BIN
#error "LEAKLAB_BIN must name the leaklab binary"
#endif

extern char **environ;

void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

srv_t *srv_start(const char *const *args, const char *const *env) {
  static int curl_ready;
  if (!curl_ready) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl_ready = 1;
  }
  srv_t *s = calloc(1, sizeof *s);
  assert_non_null(s);
  snprintf(s->dir, sizeof s->dir, "/tmp/leaklab-test-XXXXXX");
  assert_non_null(mkdtemp(s->dir));
  char portfile[128];
  snprintf(portfile, sizeof portfile, "%s/port", s->dir);

  const char *argv[64];
  int n = 0;
  argv[n++] = LEAKLAB_BIN;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--port-file";
  argv[n++] = portfile;
  for (int i = 0; args && args[i] && n < 62; i++) argv[n++] = args[i];
  argv[n] = NULL;

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
    execve(LEAKLAB_BIN, (char *const *)argv, environ);
    _exit(127);
  }
  s->pid = pid;
  /* Wait (up to 20 s: sanitizer builds start slowly) for the port file. */
  for (int i = 0; i < 2000; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%u", &s->port) == 1;
      fclose(f);
      if (ok && s->port) break;
    }
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      fail_msg("leaklab exited before listening (status %d)", st);
    sleep_ms(10);
  }
  if (!s->port) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("leaklab did not write its port file");
  }
  s->curl = curl_easy_init();
  assert_non_null(s->curl);
  return s;
}

int srv_stop(srv_t *s) { return srv_stop_with(s, SIGTERM); }

void srv_signal(srv_t *s, int sig) { assert_int_equal(kill(s->pid, sig), 0); }

int srv_stop_with(srv_t *s, int sig) {
  if (!s) return -1;
  if (s->curl) curl_easy_cleanup(s->curl);
  kill(s->pid, sig);
  int st = 0, rc = -1;
  for (int i = 0; i < 3000; i++) { /* 30 s */
    pid_t w = waitpid(s->pid, &st, WNOHANG);
    if (w == s->pid) {
      rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    sleep_ms(10);
  }
  if (rc == -1) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
  }
  char path[128];
  snprintf(path, sizeof path, "%s/port", s->dir);
  unlink(path);
  rmdir(s->dir);
  free(s);
  return rc;
}

typedef struct grow {
  char *p;
  size_t len;
} grow_t;

static size_t on_data(char *data, size_t size, size_t n, void *ctx) {
  grow_t *g = ctx;
  size_t k = size * n;
  char *p = realloc(g->p, g->len + k + 1);
  if (!p) return 0;
  memcpy(p + g->len, data, k);
  g->p = p;
  g->len += k;
  g->p[g->len] = '\0';
  return k;
}

http_resp_t http(srv_t *s, const char *method, const char *path,
                 const char *body, long len, const char *const *headers) {
  CURL *h = s->curl;
  curl_easy_reset(h);
  char url[2048];
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", s->port, path);
  grow_t b = {NULL, 0}, hd = {NULL, 0};
  struct curl_slist *list = NULL;
  bool expect = false;
  for (int i = 0; headers && headers[i]; i++) {
    list = curl_slist_append(list, headers[i]);
    if (!strncasecmp(headers[i], "Expect:", 7)) expect = true;
  }
  if (!expect) list = curl_slist_append(list, "Expect:");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (!strcmp(method, "HEAD")) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(len < 0 ? (long)strlen(body) : len));
  }
  http_resp_t r = {0, NULL, 0, NULL};
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(list);
  r.body = b.p ? b.p : strdup("");
  r.len = b.len;
  r.headers = hd.p ? hd.p : strdup("");
  return r;
}

void http_free(http_resp_t *r) {
  free(r->body);
  free(r->headers);
  r->body = r->headers = NULL;
}

bool http_has_header(const http_resp_t *r, const char *name,
                     const char *value) {
  char want[256];
  snprintf(want, sizeof want, "%s: %s\r\n", name, value);
  for (const char *p = r->headers; p && *p;) {
    if (!strncasecmp(p, want, strlen(name) + 1) &&
        !strncmp(p + strlen(name) + 2, value, strlen(value)) &&
        !strncmp(p + strlen(name) + 2 + strlen(value), "\r\n", 2))
      return true;
    const char *nl = strchr(p, '\n');
    p = nl ? nl + 1 : NULL;
  }
  return false;
}

cJSON *http_json(srv_t *s, const char *method, const char *path,
                 const char *body, long *status) {
  http_resp_t r = http(s, method, path, body, -1, NULL);
  cJSON *doc = cJSON_ParseWithLength(r.body, r.len);
  if (!doc)
    fail_msg("%s %s: status %ld, not JSON: %.200s", method, path, r.status,
             r.body);
  if (!http_has_header(&r, "Content-Type", "application/json"))
    fail_msg("%s %s: JSON without Content-Type: application/json", method, path);
  if (status) *status = r.status;
  http_free(&r);
  return doc;
}

cJSON *jget(cJSON *root, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  cJSON *cur = root;
  char *save = NULL;
  for (char *tok = strtok_r(buf, "/", &save); tok && cur;
       tok = strtok_r(NULL, "/", &save))
    cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
  return cur;
}

double jnum(cJSON *root, const char *path) {
  cJSON *v = jget(root, path);
  if (!cJSON_IsNumber(v)) fail_msg("no number at %s", path);
  return v->valuedouble;
}

double stat_num(srv_t *s, const char *path) {
  cJSON *doc = http_json(s, "GET", "/api/stats", NULL, NULL);
  double v = jnum(doc, path);
  cJSON_Delete(doc);
  return v;
}

cJSON *leak_site(srv_t *s, const char *name) {
  cJSON *doc = http_json(s, "GET", "/api/leaks?top=4096", NULL, NULL);
  cJSON *found = NULL, *site;
  cJSON_ArrayForEach(site, jget(doc, "sites")) {
    cJSON *n = jget(site, "site");
    if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) {
      found = cJSON_Duplicate(site, 1);
      break;
    }
  }
  cJSON_Delete(doc);
  return found;
}

uint64_t site_bytes(srv_t *s, const char *name) {
  cJSON *site = leak_site(s, name);
  uint64_t v = site ? (uint64_t)jnum(site, "bytes") : 0;
  cJSON_Delete(site);
  return v;
}

uint64_t site_total_bytes(srv_t *s, const char *name) {
  /* /api/leaks lists live sites only; the metrics list every site. */
  http_resp_t r = http(s, "GET", "/metrics", NULL, 0, NULL);
  char want[128];
  snprintf(want, sizeof want, "leaklab_site_allocated_bytes_total{site=\"%s\",", name);
  uint64_t v = 0;
  char *p = strstr(r.body, want);
  if (p) {
    char *sp = strchr(p, ' ');
    if (sp) v = strtoull(sp + 1, NULL, 10);
  }
  http_free(&r);
  return v;
}

void set_flags(srv_t *s, const char *json) {
  http_resp_t r = http(s, "PATCH", "/api/flags", json, -1, NULL);
  if (r.status != 200) fail_msg("PATCH %s: %ld %s", json, r.status, r.body);
  http_free(&r);
}

uint64_t last_event(srv_t *s) {
  cJSON *doc = http_json(s, "GET", "/api/events?limit=1&since=999999999999", NULL, NULL);
  uint64_t v = (uint64_t)jnum(doc, "last_seq");
  cJSON_Delete(doc);
  return v;
}

uint64_t heap_errors(srv_t *s, const char *kind) {
  char path[64];
  snprintf(path, sizeof path, "errors/%s", kind);
  return (uint64_t)stat_num(s, path);
}

static bool str_is(cJSON *v, const char *want) {
  if (!want) return true;
  return cJSON_IsString(v) && !strcmp(v->valuestring, want);
}

unsigned count_events(srv_t *s, uint64_t since, const char *kind,
                      const char *site, const char *seen_at,
                      const char *freed_at) {
  unsigned n = 0;
  for (;;) {
    char path[128];
    snprintf(path, sizeof path, "/api/events?since=%llu&limit=4096",
             (unsigned long long)since);
    cJSON *doc = http_json(s, "GET", path, NULL, NULL);
    cJSON *ev, *events = jget(doc, "events");
    int got = cJSON_GetArraySize(events);
    cJSON_ArrayForEach(ev, events) {
      since = (uint64_t)jnum(ev, "seq");
      if (!str_is(jget(ev, "type"), "heap_error")) continue;
      if (str_is(jget(ev, "kind"), kind) && str_is(jget(ev, "site"), site) &&
          str_is(jget(ev, "seen_at"), seen_at) &&
          str_is(jget(ev, "freed_at"), freed_at))
        n++;
    }
    cJSON_Delete(doc);
    if (got == 0) break;
  }
  return n;
}

void repeat(srv_t *s, unsigned n, const char *method, const char *path,
            const char *body, long status) {
  for (unsigned i = 0; i < n; i++) {
    http_resp_t r = http(s, method, path, body, -1, NULL);
    if (r.status != status)
      fail_msg("%s %s (#%u): want %ld, got %ld: %.200s", method, path, i,
               status, r.status, r.body);
    http_free(&r);
  }
}

unsigned events_of(srv_t *s, uint64_t since, const char *type, char *last,
                   size_t cap) {
  unsigned n = 0;
  cJSON *doc = http_json(s, "GET", "/api/events?since=0&limit=4096", NULL, NULL);
  cJSON *ev;
  cJSON_ArrayForEach(ev, jget(doc, "events")) {
    if (jnum(ev, "seq") <= since || strcmp(jget(ev, "type")->valuestring, type))
      continue;
    n++;
    if (last) snprintf(last, cap, "%s", jget(ev, "message")->valuestring);
  }
  cJSON_Delete(doc);
  return n;
}

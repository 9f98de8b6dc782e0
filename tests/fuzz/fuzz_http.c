/* libFuzzer target: the whole HTTP surface a client reaches. The input is
 * the bytes a client sends on one connection (request heads, query
 * strings, bodies, pipelined requests, garbage), given to the real server
 * layers in this process through a socketpair: libmicrohttpd, the router,
 * the observer's JSON API, /metrics and page, the demo app, the guards.
 * Flag changes need a token the fuzzer does not know (fuzz_flags_* cover
 * their parsing), so every fault stays off.
 *
 * Checked: the server answers or closes within a bound (no hang); every
 * answer is an HTTP/1.x status line with a 3-digit status (or there is
 * none: libmicrohttpd closes on a request line it cannot read); no answer is a
 * 500 (with every fault off nothing may fail but memory, and no
 * allocation fails here); every JSON answer's body is one JSON value; the
 * heap catches no bad operation. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <lab/cjson.h>

#include "app/demo.h"
#include "core/counters.h"
#include "core/err.h"
#include "core/shm.h"
#include "fuzz_util.h"
#include "guards/guards.h"
#include "http/http.h"
#include "observe/events.h"
#include "observe/observe.h"
#include "observe/workers.h"

#define FUZZ_HTTP_WAIT_MS 5000 /* an answer (or a close) within this */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  lab_cjson_install();
  /* The server's set-up as main does it, one process, serving. */
  if (srv_shm_create(0) || srv_counters_setup() || srv_http_setup() ||
      srv_observe_setup(64, 250) || srv_demo_setup() || srv_guards_register(0) ||
      srv_guards_setup())
    fuzz_fail("server set-up failed");
  srv_workers_become(1);
  atomic_store(&srv_workers->worker_pid, (uint64_t)getpid());
  srv_http_config_t hc = {
      .threads = 1,
      .max_conns = 64,
      .timeout_s = 2,
      .request_timeout_s = 2,
      .header_timeout_s = 2,
      .max_conns_per_client = 0,
      .max_body = 65536,
      .admin_token = "fuzz-has-no-token-9f2c4e",
  };
  if (srv_http_start(&hc, -1, -1)) fuzz_fail("the daemon would not start");
  return 0;
}

/* Everything the server sends on fd until it closes; NULL on a hang. */
static char *read_all(int fd, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, FUZZ_HTTP_WAIT_MS) != 1) {
      free(buf);
      return NULL;
    }
    if (n == cap) buf = realloc(buf, (cap *= 2) + 1);
    ssize_t got = read(fd, buf + n, cap - n);
    if (got <= 0) break;
    n += (size_t)got;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* The value of header `name` in head[0..n), or NULL (case-insensitive). */
static const char *header(const char *head, size_t n, const char *name,
                          size_t *vlen) {
  size_t k = strlen(name);
  for (const char *p = head; p && p < head + n;) {
    const char *eol = memmem(p, (size_t)(head + n - p), "\r\n", 2);
    if (!eol) break;
    if ((size_t)(eol - p) > k + 1 && !strncasecmp(p, name, k) && p[k] == ':') {
      const char *v = p + k + 1;
      while (*v == ' ') v++;
      *vlen = (size_t)(eol - v);
      return v;
    }
    p = eol + 2;
  }
  return NULL;
}

/* Whether the input may hold a HEAD request: the answer to one has a
 * Content-Length but no body, so answers cannot be split by length. */
static bool any_head(const uint8_t *data, size_t size) {
  for (size_t i = 0; i + 4 <= size; i++)
    if ((i == 0 || data[i - 1] == '\n') && !memcmp(data + i, "HEAD", 4)) return true;
  return false;
}

/* With a HEAD among the requests: the first answer starts with a status
 * line, and no line starts a 500. (A close without an answer is allowed:
 * libmicrohttpd closes on a request line it cannot read.) */
static void check_statuses(const char *out, size_t len) {
  if (!len) return;
  FUZZ_CHECK(len >= 12 && (!memcmp(out, "HTTP/1.1 ", 9) || !memcmp(out, "HTTP/1.0 ", 9)),
             "not a status line: %.40s", out);
  for (const char *p = out; p && p < out + len;) {
    FUZZ_CHECK(strncmp(p, "HTTP/1.1 500", 12), "a 500 answer");
    p = memchr(p, '\n', (size_t)(out + len - p));
    if (p) p++;
  }
}

/* Check every answer in what the server sent. */
static void check_answers(const char *out, size_t len) {
  const char *p = out, *end = out + len;
  while (p < end) {
    FUZZ_CHECK(end - p >= 12 && (!memcmp(p, "HTTP/1.1 ", 9) || !memcmp(p, "HTTP/1.0 ", 9)),
               "not a status line: %.40s", p);
    int status = atoi(p + 9);
    FUZZ_CHECK(status >= 100 && status <= 599, "status %d", status);
    const char *body = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    FUZZ_CHECK(body, "an answer without the end of its head");
    size_t head_len = (size_t)(body - p);
    body += 4;
    size_t vlen = 0;
    const char *cl = header(p, head_len, "Content-Length", &vlen);
    size_t blen = cl ? strtoull(cl, NULL, 10) : (size_t)(end - body);
    FUZZ_CHECK(blen <= (size_t)(end - body), "a body cut short");
    FUZZ_CHECK(status != 500, "500: %.*s", (int)(blen < 200 ? blen : 200), body);
    const char *ct = header(p, head_len, "Content-Type", &vlen);
    bool head_only = blen == 0;
    if (ct && vlen >= 16 && !strncmp(ct, "application/json", 16) && !head_only) {
      cJSON *doc = cJSON_ParseWithLength(body, blen);
      FUZZ_CHECK(doc, "a JSON answer that is not JSON: %.*s",
                 (int)(blen < 200 ? blen : 200), body);
      cJSON_Delete(doc);
    }
    p = body + blen;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lab_stats_t st0;
  lab_stats(&st0);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) fuzz_fail("socketpair");
  if (srv_http_add_connection(sv[0])) fuzz_fail("the daemon refused a connection");
  /* Inputs are small (-max_len): the socket's buffer takes them whole. */
  for (size_t off = 0; off < size;) {
    ssize_t n = write(sv[1], data + off, size - off);
    if (n <= 0) break;
    off += (size_t)n;
  }
  shutdown(sv[1], SHUT_WR);
  size_t len = 0;
  char *out = read_all(sv[1], &len);
  close(sv[1]);
  FUZZ_CHECK(out, "no answer and no close within %d ms", FUZZ_HTTP_WAIT_MS);
  if (any_head(data, size)) check_statuses(out, len);
  else check_answers(out, len);
  free(out);
  lab_stats_t st1;
  lab_stats(&st1);
  for (int e = 0; e < LAB_FAULT_COUNT; e++)
    FUZZ_CHECK(st1.errors[e] == st0.errors[e], "the heap caught %s",
               lab_fault_name((lab_fault_t)e));
  return 0;
}

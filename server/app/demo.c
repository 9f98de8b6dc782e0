/* demo.c - the demo app and its faults. Each fault is the mistake as it is
 * usually written; the flag decides, per request, whether this request
 * makes it. */
#include "app/demo.h"

#include <cjson/cJSON.h>
#include <lab/cjson.h>
#include <stdio.h>
#include <string.h>

#include "app/echo.h"
#include "app/faults.h"
#include "app/session.h"
#include "core/err.h"
#include "core/parse.h"

#define SRV_BLOB_DEFAULT 16384
#define SRV_BLOB_MAX (1u << 20)
/* A block freed early stays mapped while it sits in the thread's
 * quarantine, which takes blocks of the heap's small classes only. */
#define SRV_BLOB_EARLY_MAX 65536
#define SRV_NAME_LIMIT 256

/* ---- /hello ---- */

/* The mistake of hello.stack_return: the greeting is made in this
 * function's own stack frame and the caller gets a pointer to it. The
 * frame is gone when the function returns; its bytes stay mapped and are
 * reused by the next call. (The volatile pointer keeps the compiler from
 * seeing what is returned and replacing it.) */
static __attribute__((noinline)) const char *srv__greeting_in_frame(const char *name) {
  char frame[SRV_NAME_LIMIT + 64];
  snprintf(frame, sizeof frame, "Hello, %s!\n", name);
  char *volatile dangling = frame;
  return dangling;
}

/* Any later call: this one fills a frame of its own, where the greeting's
 * frame was. */
static __attribute__((noinline)) unsigned srv__next_call(void) {
  volatile char frame[2 * SRV_NAME_LIMIT];
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof frame; i++) frame[i] = '#';
  for (size_t i = 0; i < sizeof frame; i += 64) sum += (unsigned char)frame[i];
  return sum;
}

void srv_demo_hello(srv_req_t *rq) {
  static const char *const allowed[] = {"name", NULL};
  if (!srv_http_query_only(rq, allowed)) return;
  const char *name = srv_http_query(rq, "name");
  if (!name || !*name) name = "world";
  size_t n = strlen(name);
  if (n > SRV_NAME_LIMIT) {
    srv_http_error(rq, 400, "name longer than %d bytes", SRV_NAME_LIMIT);
    return;
  }
  /* Keep a copy of the name. The mistake: room for the characters but not
   * for the NUL that the copy writes after them. */
  char *copy;
  if (srv_faults_hit(SRV_FAULT_hello_off_by_one)) {
    copy = lab_malloc_named(n, "hello.name"); /* strlen(name), no + 1 */
    memcpy(copy, name, n + 1);                /* strcpy(copy, name) */
  } else {
    copy = lab_malloc_named(n + 1, "hello.name");
    memcpy(copy, name, n + 1);
  }

  /* Short greetings are formatted on the stack, long ones on the heap;
   * the mistake: the cleanup frees whichever it got. */
  char small[64];
  size_t len = n + sizeof "Hello, !\n" - 1;
  bool on_stack = len < sizeof small && srv_faults_hit(SRV_FAULT_hello_free_stack);
  char *greeting = on_stack ? small : lab_malloc_named(len + 1, "hello.greeting");
  snprintf(greeting, len + 1, "Hello, %s!\n", copy);

  /* The response buffer: handed to MHD, which frees it when sent. The
   * mistake: hand MHD a copy and forget our own buffer. */
  char *resp = lab_malloc_named(len, "hello.response");
  if (srv_faults_hit(SRV_FAULT_hello_stack_return)) {
    /* The mistake: keep what a helper returned from its stack, and read it
     * after another call has used that stack. */
    const char *greeting_ptr = srv__greeting_in_frame(copy);
    srv__next_call();
    memcpy(resp, greeting_ptr, len);
  } else {
    memcpy(resp, greeting, len);
  }
  if (srv_faults_hit(SRV_FAULT_hello_leak_response))
    srv_http_send_copy(rq, 200, "text/plain; charset=utf-8", resp, len);
  else
    srv_http_send(rq, 200, "text/plain; charset=utf-8", resp, len);

  lab_free_at(greeting, LAB_SITE("hello.free"));
  lab_free_at(copy, LAB_SITE("hello.free"));
}

/* ---- /echo ---- */

static const char srv__echo_sample[] =
    "{\"greeting\":\"hello\",\"numbers\":[1,2,3,5,8,13],"
    "\"nested\":{\"ok\":true,\"name\":\"leaklab\"}}";

void srv_demo_echo(srv_req_t *rq) {
  if (!srv_http_query_only(rq, NULL)) return;
  const char *src = srv__echo_sample;
  size_t len = sizeof srv__echo_sample - 1;
  if (rq->method == SRV_M_POST) {
    src = rq->body ? rq->body : "";
    len = rq->body_len;
  }
  char *text, why[128];
  size_t n;
  int err = srv_echo_transform(src, len, srv_faults_hit, srv_http_site(rq->route),
                               &text, &n, why, sizeof why);
  if (err) {
    srv_http_error(rq, err == SRV_ENOMEM ? 503 : 400, "%s", why);
    return;
  }
  srv_http_send(rq, 200, "application/json", text, n);
}

/* ---- /session ---- */

static void srv__session_json(srv_req_t *rq, unsigned status,
                              const srv_session_view_t *v) {
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_str(&j, "id", v->id);
  srv_json_str(&j, "user", v->user);
  srv_json_u64(&j, "created_ms", v->created_ms);
  srv_json_u64(&j, "hits", v->hits);
  srv_json_u64(&j, "sessions", srv_session_count());
  srv_json_end(&j);
  srv_http_send_json(rq, status, &j);
}

void srv_demo_session(srv_req_t *rq) {
  static const char *const allowed[] = {"id", NULL};
  if (!srv_http_query_only(rq, allowed)) return;
  srv_session_view_t v;
  if (rq->method == SRV_M_POST) {
    char user[32] = "";
    if (rq->body_len) {
      cJSON *doc = srv_parse_json(rq->body, rq->body_len,
                                  LAB_SITE("session.request"));
      if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        srv_http_error(rq, 400, "expected a JSON object like {\"user\": \"ada\"}");
        return;
      }
      const cJSON *u = cJSON_GetObjectItemCaseSensitive(doc, "user");
      /* Cut on a character boundary: the answer stays valid UTF-8. */
      if (cJSON_IsString(u))
        srv_parse_utf8(user, sizeof user, u->valuestring, strlen(u->valuestring));
      cJSON_Delete(doc);
    }
    if (srv_faults_hit(SRV_FAULT_session_deadlock)) srv_session_count_locked_twice();
    bool unbounded = srv_faults_hit(SRV_FAULT_session_unbounded_cache);
    if (srv_session_create(user, unbounded, &v)) {
      srv_http_error(rq, 500, "out of memory creating a session");
      return;
    }
    srv__session_json(rq, 201, &v);
    return;
  }
  const char *id = srv_http_query(rq, "id");
  if (!id) {
    srv_json_t j;
    srv_http_json_init(rq, &j);
    srv_json_obj(&j, NULL);
    srv_json_u64(&j, "sessions", srv_session_count());
    srv_json_u64(&j, "capacity", SRV_SESSION_CAP);
    srv_json_u64(&j, "entry_bytes", srv_session_entry_bytes());
    srv_json_end(&j);
    srv_http_send_json(rq, 200, &j);
    return;
  }
  if (!srv_session_get(id, &v)) {
    srv_http_error(rq, 404, "no such session");
    return;
  }
  srv__session_json(rq, 200, &v);
}

/* ---- /blob ---- */

void srv_demo_blob(srv_req_t *rq) {
  static const char *const allowed[] = {"size", NULL};
  uint64_t size = SRV_BLOB_DEFAULT;
  if (!srv_http_query_only(rq, allowed) ||
      !srv_http_query_u64(rq, "size", 1, SRV_BLOB_MAX, &size))
    return;
  bool early = srv_faults_hit(SRV_FAULT_blob_free_early);
  if (early && size > SRV_BLOB_EARLY_MAX) size = SRV_BLOB_EARLY_MAX;

  char *buf = lab_malloc_named(size, "blob.buffer");
  static const char line[] = "leaklab blob: 0123456789abcdefghijklmnopqrstuvwxyz\n";
  for (size_t i = 0; i < size; i++) buf[i] = line[i % (sizeof line - 1)];

  /* A checksum over the blob in a scratch block. The mistake: freed in
   * the loop when done and again in the cleanup. */
  uint64_t *scratch = lab_malloc_named(8 * sizeof *scratch, "blob.scratch");
  memset(scratch, 0, 8 * sizeof *scratch);
  for (size_t i = 0; i < size; i++) scratch[i % 8] += (unsigned char)buf[i];
  lab_free_at(scratch, LAB_SITE("blob.free"));
  if (srv_faults_hit(SRV_FAULT_blob_double_free))
    lab_free_at(scratch, LAB_SITE("blob.free_again"));

  if (!early) {
    srv_http_send(rq, 200, "text/plain; charset=utf-8", buf, size);
    return;
  }
  /* The mistake: free the buffer, then finish it (the trailing newline)
   * and send it. The body is what the freed block now holds: the heap's
   * free poison. The send copies it at once, while the block still sits
   * in this thread's quarantine, so nothing reads unmapped memory. */
  char *out = lab_malloc_named(size, "blob.response");
  lab_free_at(buf, LAB_SITE("blob.free_early"));
  buf[size - 1] = '\n'; /* write after free */
  memcpy(out, buf, size);
  srv_http_send(rq, 200, "application/octet-stream", out, size);
}

/* ---- /report ---- */

/* One record of the report, with the padding a compiler puts in. */
typedef struct srv_row {
  char name[12];      /* "row-N", NUL-terminated, rest unset */
  uint32_t id;
  uint64_t bytes;
  uint16_t flags;
  uint8_t kind;
  /* 5 bytes of padding */
  char note[8];       /* set on even rows only */
} srv_row_t;

/* Grow the report's text buffer to `cap`. The mistake: a hand-written
 * realloc that copies into a new block and loses the old one. */
static char *srv__report_grow(char *old, size_t used, size_t cap, bool leak) {
  if (!leak) return lab_realloc_at(old, cap, LAB_SITE("report.text"));
  char *p = lab_malloc_named(cap, "report.text");
  if (old) memcpy(p, old, used);
  return p; /* lab_free(old) forgotten */
}

void srv_demo_report(srv_req_t *rq) {
  static const char *const allowed[] = {"rows", NULL};
  uint64_t nrows = 16;
  if (!srv_http_query_only(rq, allowed) ||
      !srv_http_query_u64(rq, "rows", 1, 4096, &nrows))
    return;
  srv_row_t *rows;
  if (srv_faults_hit(SRV_FAULT_report_uninit))
    rows = lab_malloc_named(nrows * sizeof *rows, "report.rows"); /* not calloc */
  else
    rows = lab_calloc_named(nrows, sizeof *rows, "report.rows");
  for (uint64_t i = 0; i < nrows; i++) {
    srv_row_t *r = &rows[i];
    snprintf(r->name, sizeof r->name, "row-%u", (unsigned)(i & 0xfffff));
    r->id = (uint32_t)i;
    r->bytes = (i + 1) * 4096;
    r->flags = (uint16_t)(i & 3);
    r->kind = (uint8_t)(i % 5);
    if (!(i & 1)) memcpy(r->note, "even", 5);
  }

  bool leak = srv_faults_hit(SRV_FAULT_report_grow_leak);
  size_t cap = 64, len = 0;
  char *text = srv__report_grow(NULL, 0, cap, leak);
  char line[256];
  for (uint64_t i = 0; i <= nrows; i++) {
    int n;
    if (i == 0) {
      n = snprintf(line, sizeof line, "# %llu records of %zu bytes: name id bytes | hex\n",
                   (unsigned long long)nrows, sizeof(srv_row_t));
    } else {
      const srv_row_t *r = &rows[i - 1];
      n = snprintf(line, sizeof line, "%-8.8s %4u %8llu |", r->name, r->id,
                   (unsigned long long)r->bytes);
      const unsigned char *b = (const unsigned char *)r;
      for (size_t k = 0; k < sizeof *r && n + 4 < (int)sizeof line; k++)
        n += snprintf(line + n, sizeof line - (size_t)n, " %02x", b[k]);
      n += snprintf(line + n, sizeof line - (size_t)n, "\n");
    }
    while (len + (size_t)n + 1 > cap) {
      text = srv__report_grow(text, len, cap * 2, leak);
      cap *= 2;
    }
    memcpy(text + len, line, (size_t)n + 1);
    len += (size_t)n;
  }
  lab_free_at(rows, LAB_SITE("report.free"));
  srv_http_send(rq, 200, "text/plain; charset=utf-8", text, len);
}

static const srv_route_def_t srv__routes[] = {
    {"hello", "/hello", SRV_M_GET, srv_demo_hello, SRV_ROUTE_SHEDDABLE, NULL},
    {"echo", "/echo", SRV_M_GET | SRV_M_POST, srv_demo_echo,
     SRV_ROUTE_SHEDDABLE, NULL},
    {"session", "/session", SRV_M_GET | SRV_M_POST, srv_demo_session,
     SRV_ROUTE_SHEDDABLE, NULL},
    {"blob", "/blob", SRV_M_GET, srv_demo_blob, SRV_ROUTE_SHEDDABLE, NULL},
    {"report", "/report", SRV_M_GET, srv_demo_report, SRV_ROUTE_SHEDDABLE,
     NULL},
};

int srv_demo_setup(void) {
  int err = srv_faults_register();
  for (size_t i = 0; !err && i < sizeof srv__routes / sizeof srv__routes[0]; i++) {
    int r = srv_router_add(&srv__routes[i]);
    if (r < 0) err = r;
  }
  return err;
}

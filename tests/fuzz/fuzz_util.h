/* fuzz_util.h - what the server's fuzz targets share: a lab heap that
 * stops the run at anything it catches, cJSON on that heap with one
 * allocation failing on demand, a leak check around each input, and checks
 * of the server's answers written independently of the server's code. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lab/alloc.h>

#include "app/faults.h"
#include "guards/guards.h"
#include "observe/flags.h"

/* Print what went wrong and stop: libFuzzer keeps the input. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void
fuzz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

#define FUZZ_CHECK(ok, ...)                                                  \
  do {                                                                       \
    if (!(ok)) fuzz_fail(__VA_ARGS__);                                       \
  } while (0)

/* Anything the lab heap catches (double or invalid free, overflow, write
 * after free) is a bug of the code under test. */
static inline void fuzz_on_heap_event(const lab_event_t *ev, void *ctx) {
  (void)ctx;
  fuzz_fail("lab heap caught %s: block of %zu bytes from %s, seen at %s",
            lab_fault_name(ev->kind), ev->size,
            ev->alloc_site && ev->alloc_site->name ? ev->alloc_site->name : "?",
            ev->site && ev->site->name ? ev->site->name : "?");
}

/* cJSON's allocations, counted; the fuzz_fail_at-th one fails (0: none). */
static uint64_t fuzz_allocs, fuzz_fail_at;

static inline void *fuzz_cjson_malloc(size_t n) {
  if (++fuzz_allocs == fuzz_fail_at) return NULL;
  return lab_hook_malloc(n);
}

/* For LLVMFuzzerInitialize: the heap (LEAKLAB_FUZZ_HEAP=libc picks the
 * libc backend, so ASan sees each block), its event subscriber and
 * cJSON's hooks. */
static inline void fuzz_setup(void) {
  const char *heap = getenv("LEAKLAB_FUZZ_HEAP");
  lab_config_t cfg = {.fill_limit = LAB_FILL_WHOLE}; /* catch all we can */
  if (heap && lab_backend_parse(heap, &cfg.backend))
    fuzz_fail("LEAKLAB_FUZZ_HEAP: lab or libc, not %s", heap);
  if (lab_init(&cfg)) fuzz_fail("lab_init failed");
  lab_set_event_callback(fuzz_on_heap_event, NULL);
  cJSON_Hooks hooks = {fuzz_cjson_malloc, lab_hook_free};
  cJSON_InitHooks(&hooks);
}

/* For the flag parsers: every flag the server registers, as it registers
 * them (the demo's faults, then the guards). */
static inline void fuzz_setup_flags(void) {
  if (srv_faults_register() || srv_guards_register(0))
    fuzz_fail("registering the flags failed");
}

/* The heap's figures when an input starts. */
typedef struct fuzz_mark {
  lab_stats_t st;
} fuzz_mark_t;

static inline void fuzz_begin(fuzz_mark_t *m) { lab_stats(&m->st); }

/* When an input is done: nothing it allocated is live, and the heap has
 * caught nothing (quarantined blocks checked now). */
static inline void fuzz_end(const fuzz_mark_t *m, const char *what) {
  lab_flush_quarantine();
  lab_stats_t st;
  lab_stats(&st);
  FUZZ_CHECK(st.live_bytes == m->st.live_bytes &&
                 st.live_blocks == m->st.live_blocks,
             "%s leaks: %lld bytes in %lld blocks still live", what,
             (long long)(st.live_bytes - m->st.live_bytes),
             (long long)(st.live_blocks - m->st.live_blocks));
  for (int k = 0; k < LAB_FAULT_COUNT; k++)
    FUZZ_CHECK(st.errors[k] == m->st.errors[k], "%s: heap caught %s", what,
               lab_fault_name((lab_fault_t)k));
}

/* A copy of data[0..size) with a NUL after it (plain malloc: ASan sees
 * every read past the end). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (size) memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* Whether s is well-formed UTF-8 (RFC 3629), decoded by hand here so the
 * check shares no code with the server. */
static inline bool fuzz_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p, need, cp;
    if (c < 0x80) { p++; continue; }
    if ((c & 0xe0) == 0xc0) need = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) need = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) need = 3, cp = c & 0x07;
    else return false;
    for (unsigned i = 1; i <= need; i++) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
      return false;
    p += need + 1;
  }
  return true;
}

/* Whether v is a value flag f accepts, as flags.h documents them. */
static inline bool fuzz_flag_value_ok(srv_flag_t f, double v) {
  if (v == 0 && signbit(v)) return false; /* -0: shown as 0, not stored */
  switch (srv_flags_type(f)) {
  case SRV_FLAG_RATE: return v >= 0 && v <= 1;
  case SRV_FLAG_BOOL: return v == 0 || v == 1;
  case SRV_FLAG_BYTES:
  case SRV_FLAG_REQUESTS:
    return v >= 0 && v <= 9007199254740992.0 && v == (double)(uint64_t)v;
  }
  return false;
}

/* What every result must satisfy: on success n known flags with accepted
 * values; on failure nothing to apply, and a message (and flag name) fit
 * to send as JSON. */
static inline void fuzz_check_change(int err, const srv_flags_change_t *c,
                                     const char *form) {
  FUZZ_CHECK(c->n <= SRV_FLAGS_MAX_CHANGES, "%s: n %zu", form, c->n);
  if (err) {
    FUZZ_CHECK(err == SRV_EINVAL || err == SRV_ENOENT || err == SRV_ERANGE ||
                   err == SRV_E2BIG,
               "%s: unexpected error %d", form, err);
    FUZZ_CHECK(c->n == 0, "%s: failed with %zu changes to apply", form, c->n);
    FUZZ_CHECK(c->why[0], "%s: failed (%d) without a message", form, err);
    FUZZ_CHECK(fuzz_utf8(c->why) && fuzz_utf8(c->flag),
               "%s: message or flag name not UTF-8: %s / %s", form, c->why,
               c->flag);
    if (err == SRV_ENOENT)
      FUZZ_CHECK(srv_flags_find(c->flag) < 0,
                 "%s: unknown flag reported as '%s'", form, c->flag);
    else if (err == SRV_ERANGE || err == SRV_E2BIG)
      FUZZ_CHECK(srv_flags_find(c->flag) >= 0, "%s: error %d names '%s'",
                 form, err, c->flag);
    return;
  }
  FUZZ_CHECK(!c->why[0], "%s: succeeded with a message: %s", form, c->why);
  for (size_t i = 0; i < c->n; i++) {
    FUZZ_CHECK(c->ids[i] >= 0 && c->ids[i] < srv_flags_count(), "%s: flag id %d", form,
               (int)c->ids[i]);
    FUZZ_CHECK(fuzz_flag_value_ok(c->ids[i], c->values[i]),
               "%s: %s = %.17g accepted", form, srv_flags_name(c->ids[i]),
               c->values[i]);
  }
}

/* Whether two sets of changes are the same, value for value. */
static inline bool fuzz_same_change(const srv_flags_change_t *a,
                                    const srv_flags_change_t *b) {
  if (a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (a->ids[i] != b->ids[i] || a->values[i] != b->values[i]) return false;
  return true;
}

/* Append to a bounded text buffer (the caller sizes it). */
__attribute__((format(printf, 3, 4))) static inline void
fuzz_cat(char *buf, size_t cap, const char *fmt, ...);
static inline void fuzz_cat(char *buf, size_t cap, const char *fmt, ...) {
  size_t len = strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + len, cap - len, fmt, ap);
  va_end(ap);
  FUZZ_CHECK(n >= 0 && (size_t)n < cap - len, "text buffer too small");
}

#define FUZZ_TEXT_CAP (SRV_FLAGS_MAX_CHANGES * 128 + 16)

/* c written as a query string; `salt` varies the spelling (true or 1,
 * 64M or 67108864, %-escapes) without changing the values. */
static inline void fuzz_change_query(const srv_flags_change_t *c, uint64_t salt,
                                     char *buf, size_t cap) {
  buf[0] = '\0';
  for (size_t i = 0; i < c->n; i++, salt = salt * 6364136223846793005ull + 1) {
    srv_flag_t f = c->ids[i];
    double v = c->values[i];
    if (i) fuzz_cat(buf, cap, "&");
    for (const char *p = srv_flags_name(f); *p; p++) {
      if ((salt >> 40) & 1 && (*p == '.' || *p == '_'))
        fuzz_cat(buf, cap, "%%%02X", *p);
      else
        fuzz_cat(buf, cap, "%c", *p);
    }
    fuzz_cat(buf, cap, "=");
    switch (srv_flags_type(f)) {
    case SRV_FLAG_BOOL:
      if ((salt >> 41) & 1) fuzz_cat(buf, cap, "%s", v ? "true" : "false");
      else fuzz_cat(buf, cap, "%d", v ? 1 : 0);
      break;
    case SRV_FLAG_RATE:
      fuzz_cat(buf, cap, "%.17g", v);
      break;
    case SRV_FLAG_BYTES: {
      static const char *const unit[] = {"", "k", "M", "G"};
      static const char *const tail[] = {"", "B", "iB"};
      uint64_t n = (uint64_t)v;
      int u = 0;
      while ((salt >> 42) & 1 && u < 3 && n && n % 1024 == 0) n /= 1024, u++;
      fuzz_cat(buf, cap, "%llu%s%s", (unsigned long long)n, unit[u],
               u ? tail[(salt >> 44) % 3] : "");
      break;
    }
    case SRV_FLAG_REQUESTS:
      fuzz_cat(buf, cap, "%llu", (unsigned long long)v);
      break;
    }
  }
}

/* c written as a JSON object (booleans as true/false). */
static inline void fuzz_change_json(const srv_flags_change_t *c, char *buf,
                                    size_t cap) {
  snprintf(buf, cap, "{");
  for (size_t i = 0; i < c->n; i++) {
    srv_flag_t f = c->ids[i];
    fuzz_cat(buf, cap, "%s\"%s\":", i ? "," : "", srv_flags_name(f));
    if (srv_flags_type(f) == SRV_FLAG_BOOL)
      fuzz_cat(buf, cap, "%s", c->values[i] ? "true" : "false");
    else
      fuzz_cat(buf, cap, "%.17g", c->values[i]);
  }
  fuzz_cat(buf, cap, "}");
}

/* Parse c back from both spellings and find the same changes. */
static inline void fuzz_round_trip(const srv_flags_change_t *c, uint64_t salt,
                                   const char *form) {
  static char text[FUZZ_TEXT_CAP];
  static srv_flags_change_t again;
  fuzz_change_query(c, salt, text, sizeof text);
  int err = srv_flags_parse_query(text, strlen(text), &again);
  FUZZ_CHECK(!err && fuzz_same_change(c, &again),
             "%s: its changes written as the query '%s' read back as "
             "something else (%d: %s)", form, text, err, again.why);
  fuzz_change_json(c, text, sizeof text);
  err = srv_flags_parse_patch(text, strlen(text), &again);
  FUZZ_CHECK(!err && fuzz_same_change(c, &again),
             "%s: its changes written as the JSON '%s' read back as "
             "something else (%d: %s)", form, text, err, again.why);
}

/* FNV-1a, to draw reproducible choices from an input. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

#endif /* FUZZ_UTIL_H */

/* json.c - a small streaming JSON writer. */
#include "core/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

void srv_json_init(srv_json_t *j, const lab_site_t *site) {
  srv_buf_init(&j->buf, site);
  j->depth = 0;
  j->nonempty = 0;
  j->arrays = 0;
}

/* Separator and key before a value. */
static void srv__json_key(srv_json_t *j, const char *key) {
  uint64_t bit = (uint64_t)1 << (j->depth % 64);
  if (j->depth) {
    if (j->nonempty & bit) srv_buf_append(&j->buf, ",", 1);
    j->nonempty |= bit;
  }
  if (key) {
    srv_buf_json_str(&j->buf, key);
    srv_buf_append(&j->buf, ":", 1);
  }
}

static void srv__json_open(srv_json_t *j, const char *key, char c) {
  srv__json_key(j, key);
  srv_buf_append(&j->buf, &c, 1);
  j->depth++;
  uint64_t bit = (uint64_t)1 << (j->depth % 64);
  j->nonempty &= ~bit;
  if (c == '[') j->arrays |= bit;
  else j->arrays &= ~bit;
}

void srv_json_obj(srv_json_t *j, const char *key) { srv__json_open(j, key, '{'); }
void srv_json_arr(srv_json_t *j, const char *key) { srv__json_open(j, key, '['); }

void srv_json_end(srv_json_t *j) {
  if (!j->depth) return;
  uint64_t bit = (uint64_t)1 << (j->depth % 64);
  srv_buf_append(&j->buf, (j->arrays & bit) ? "]" : "}", 1);
  j->depth--;
}

void srv_json_str(srv_json_t *j, const char *key, const char *v) {
  srv__json_key(j, key);
  if (v) srv_buf_json_str(&j->buf, v);
  else srv_buf_puts(&j->buf, "null");
}

void srv_json_u64(srv_json_t *j, const char *key, uint64_t v) {
  srv__json_key(j, key);
  srv_buf_printf(&j->buf, "%" PRIu64, v);
}

void srv_json_i64(srv_json_t *j, const char *key, int64_t v) {
  srv__json_key(j, key);
  srv_buf_printf(&j->buf, "%" PRId64, v);
}

void srv_json_f64(srv_json_t *j, const char *key, double v) {
  srv__json_key(j, key);
  if (!isfinite(v)) srv_buf_puts(&j->buf, "null");
  /* The range first: converting a double beyond int64_t is undefined. */
  else if (fabs(v) < 9e15 && v == (double)(int64_t)v)
    srv_buf_printf(&j->buf, "%" PRId64, (int64_t)v);
  else srv_buf_printf(&j->buf, "%.6g", v);
}

void srv_json_bool(srv_json_t *j, const char *key, bool v) {
  srv__json_key(j, key);
  srv_buf_puts(&j->buf, v ? "true" : "false");
}

void srv_json_null(srv_json_t *j, const char *key) {
  srv__json_key(j, key);
  srv_buf_puts(&j->buf, "null");
}

void srv_json_raw(srv_json_t *j, const char *key, const char *text) {
  srv__json_key(j, key);
  srv_buf_puts(&j->buf, text);
}

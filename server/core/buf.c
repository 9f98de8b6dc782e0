/* buf.c - a growable text buffer on the lab heap, or beside it. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"

void srv_buf_init(srv_buf_t *b, const lab_site_t *site) {
  memset(b, 0, sizeof *b);
  b->site = site;
}

int srv_buf_reserve(srv_buf_t *b, size_t more) {
  if (b->failed) return SRV_ENOMEM;
  if (b->len + more + 1 <= b->cap) return SRV_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1) cap *= 2;
  char *p = srv_mem_realloc(b->data, cap, b->site);
  if (!p) {
    b->failed = true;
    return SRV_ENOMEM;
  }
  if (!b->data) p[0] = '\0'; /* a fresh block is text from the start */
  b->data = p;
  b->cap = cap;
  return SRV_OK;
}

void srv_buf_append(srv_buf_t *b, const void *p, size_t n) {
  if (srv_buf_reserve(b, n) != SRV_OK) return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void srv_buf_puts(srv_buf_t *b, const char *s) { srv_buf_append(b, s, strlen(s)); }

void srv_buf_printf(srv_buf_t *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    srv_buf_append(b, small, (size_t)n);
    return;
  }
  if (srv_buf_reserve(b, (size_t)n) != SRV_OK) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void srv_buf_json_str(srv_buf_t *b, const char *s) {
  srv_buf_append(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': srv_buf_append(b, "\\\"", 2); break;
    case '\\': srv_buf_append(b, "\\\\", 2); break;
    case '\n': srv_buf_append(b, "\\n", 2); break;
    case '\r': srv_buf_append(b, "\\r", 2); break;
    case '\t': srv_buf_append(b, "\\t", 2); break;
    default:
      if (*p < 0x20) srv_buf_printf(b, "\\u%04x", *p);
      else srv_buf_append(b, p, 1);
    }
  }
  srv_buf_append(b, "\"", 1);
}

void srv_buf_prom_label(srv_buf_t *b, const char *s) {
  for (const char *p = s; *p; p++) {
    if (*p == '\\') srv_buf_append(b, "\\\\", 2);
    else if (*p == '"') srv_buf_append(b, "\\\"", 2);
    else if (*p == '\n') srv_buf_append(b, "\\n", 2);
    else srv_buf_append(b, p, 1);
  }
}

char *srv_buf_take(srv_buf_t *b, size_t *len) {
  if (!b->data) srv_buf_reserve(b, 0);
  char *d = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return d;
}

void srv_buf_free(srv_buf_t *b) {
  srv_mem_free(b->data, b->site);
  b->data = NULL;
  b->len = b->cap = 0;
}

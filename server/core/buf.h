/* buf.h - a growable text buffer on the lab heap, charged to a call site
 * the caller chooses (so a route's output shows under the route), or
 * outside it (site SRV_MEM_OUTSIDE, core/mem.h: the observer's). */
#ifndef SRV_BUF_H
#define SRV_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include <lab/alloc.h>

typedef struct srv_buf {
  char *data;               /* NUL-terminated text, or NULL when empty */
  size_t len;               /* bytes used, without the NUL */
  size_t cap;               /* bytes allocated */
  const lab_site_t *site;   /* where the buffer's blocks are charged */
  bool failed;              /* an allocation failed; the text is cut */
} srv_buf_t;

/* Start an empty buffer whose blocks are charged to `site`
 * (SRV_MEM_OUTSIDE: the C library's heap). */
void srv_buf_init(srv_buf_t *b, const lab_site_t *site);
/* Make room for `more` bytes; SRV_ENOMEM (and b->failed) on failure. */
int srv_buf_reserve(srv_buf_t *b, size_t more);
/* Append n bytes. */
void srv_buf_append(srv_buf_t *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
void srv_buf_puts(srv_buf_t *b, const char *s);
/* Append formatted text. */
void srv_buf_printf(srv_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. */
void srv_buf_json_str(srv_buf_t *b, const char *s);
/* Append a label value for Prometheus text (escaped, without quotes). */
void srv_buf_prom_label(srv_buf_t *b, const char *s);
/* Hand over the block (NUL-terminated; *len set) and reset the buffer. */
char *srv_buf_take(srv_buf_t *b, size_t *len);
/* Free the block, if any. */
void srv_buf_free(srv_buf_t *b);

#endif /* SRV_BUF_H */

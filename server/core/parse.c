/* parse.c - query strings, JSON bodies and quotable text, from bytes. */
#include "core/parse.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <string.h>

#include "core/err.h"

/* Decode one NUL-terminated piece in place as MHD does for arguments:
 * '+' is a space, then %HH; returns the decoded length. */
static size_t srv__unescape(char *s) {
  for (char *p = strchr(s, '+'); p; p = strchr(p + 1, '+')) *p = ' ';
  return MHD_http_unescape(s);
}

int srv_parse_query(const char *query, size_t len, srv_parse_pair_fn fn,
                    void *ctx) {
  if (!len) return SRV_OK;
  if (memchr(query, '\0', len)) return SRV_EINVAL;
  char *copy = lab_malloc_named(len + 1, "parse.query");
  memcpy(copy, query, len);
  copy[len] = '\0';
  int rc = SRV_OK;
  char *p = copy, *end = copy + len;
  while (p < end) {
    char *amp = memchr(p, '&', (size_t)(end - p));
    char *stop = amp ? amp : end;
    *stop = '\0';
    char *eq = memchr(p, '=', (size_t)(stop - p));
    char *value = NULL;
    size_t value_len = 0;
    if (eq) {
      *eq = '\0';
      value = eq + 1;
      value_len = srv__unescape(value);
    }
    size_t key_len = srv__unescape(p);
    rc = fn(ctx, p, key_len, value, value_len);
    if (rc || !amp) break;
    p = amp + 1;
  }
  lab_free(copy);
  return rc;
}

cJSON *srv_parse_json(const char *text, size_t len, const lab_site_t *site) {
  /* cJSON stops at a NUL and ignores what follows a value; neither is
   * JSON. */
  if (!text || !len || memchr(text, '\0', len)) return NULL;
  const lab_site_t *old = site ? lab_hook_site(site) : NULL;
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (site) lab_hook_site(old);
  if (!doc) return NULL;
  /* After the value, what cJSON takes for white space between tokens
   * (every byte up to ' '; NUL was ruled out above). */
  const char *stop = text + len;
  while (end < stop && (unsigned char)*end <= ' ') end++;
  if (end != stop) {
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}

/* Length of the well-formed UTF-8 character at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), 0 if there is
 * none. */
static size_t srv__utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0], cp, min;
  size_t k;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    k = 2, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    k = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < k) return 0;
  for (size_t i = 1; i < k; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3fu);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return k;
}

size_t srv_parse_utf8(char *dst, size_t cap, const char *src, size_t len) {
  const unsigned char *s = (const unsigned char *)src;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t k = srv__utf8_len(s + i, len - i);
    size_t w = k ? k : 1;
    if (o + w >= cap) break;
    if (k && s[i]) memcpy(dst + o, s + i, k);
    else dst[o] = '?'; /* a NUL would cut the text short */
    o += w;
    i += w;
  }
  dst[o] = '\0';
  return o;
}

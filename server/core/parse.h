/* parse.h - request input as plain bytes: query strings, JSON bodies and
 * text fit to quote back. Pure functions, no MHD connection needed, so the
 * fuzz targets run the same code as the handlers. */
#ifndef SRV_PARSE_H
#define SRV_PARSE_H

#include <stddef.h>

#include <lab/alloc.h>

struct cJSON;

/* One decoded query pair; value is NULL when the pair had no '='. Lengths
 * count decoded bytes (a %00 shows as a NUL inside them). Nonzero stops
 * the walk, and is returned by srv_parse_query. */
typedef int (*srv_parse_pair_fn)(void *ctx, const char *key, size_t key_len,
                                 const char *value, size_t value_len);

/* Split query[0..len) (the part after '?') into pairs as MHD does: on '&'
 * and the first '=', '+' as a space, %HH decoded by MHD_http_unescape; a
 * pair per '&' and one for a non-empty rest. Calls fn for each; 0, fn's
 * nonzero result, or SRV_EINVAL for a raw NUL byte in the query. */
int srv_parse_query(const char *query, size_t len, srv_parse_pair_fn fn,
                    void *ctx);

/* Parse text[0..len) as one JSON value and nothing else (white space as
 * cJSON sees it aside), charging cJSON's blocks to `site` (NULL: cJSON's
 * default). text[len] must be readable and NUL, as request bodies are.
 * NULL when it is not JSON (trailing bytes and NUL bytes included) or on
 * OOM. */
struct cJSON *srv_parse_json(const char *text, size_t len,
                             const lab_site_t *site);

/* Copy src[0..len) into dst (cap > 0 bytes, NUL-terminated) as valid
 * UTF-8, each byte of an invalid sequence written as '?', cut on a
 * character boundary to fit; returns the bytes written. For quoting
 * client input back in JSON. */
size_t srv_parse_utf8(char *dst, size_t cap, const char *src, size_t len);

#endif /* SRV_PARSE_H */

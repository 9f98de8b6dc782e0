/* json.h - a small streaming JSON writer over srv_buf: commas and nesting
 * are tracked for the caller. Output is charged to the buffer's site. */
#ifndef SRV_JSON_H
#define SRV_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct srv_json {
  srv_buf_t buf;        /* the text so far */
  unsigned depth;       /* open objects and arrays */
  uint64_t nonempty;    /* bit d: the container at depth d has a member */
  uint64_t arrays;      /* bit d: the container at depth d is an array */
} srv_json_t;

/* Start an empty document whose blocks are charged to `site`. */
void srv_json_init(srv_json_t *j, const lab_site_t *site);
/* Open an object; `key` names it inside an object, NULL elsewhere. */
void srv_json_obj(srv_json_t *j, const char *key);
/* Open an array; `key` as for srv_json_obj. */
void srv_json_arr(srv_json_t *j, const char *key);
/* Close the innermost object or array. */
void srv_json_end(srv_json_t *j);
/* A string member (an array element when key is NULL; so for all below);
 * a NULL string is written as null. */
void srv_json_str(srv_json_t *j, const char *key, const char *v);
/* An unsigned whole number. */
void srv_json_u64(srv_json_t *j, const char *key, uint64_t v);
/* A signed whole number. */
void srv_json_i64(srv_json_t *j, const char *key, int64_t v);
/* A double; NaN and infinities are written as null. */
void srv_json_f64(srv_json_t *j, const char *key, double v);
/* true or false. */
void srv_json_bool(srv_json_t *j, const char *key, bool v);
/* null. */
void srv_json_null(srv_json_t *j, const char *key);
/* Already-formatted JSON text as a value. */
void srv_json_raw(srv_json_t *j, const char *key, const char *text);

#endif /* SRV_JSON_H */

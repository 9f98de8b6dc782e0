/* echo.h - what /echo answers, from the bytes of a body: the document and
 * a description of it, with the echo.* faults (see faults.h) made where
 * the mistakes are. No MHD connection needed. */
#ifndef SRV_ECHO_H
#define SRV_ECHO_H

#include <stdbool.h>
#include <stddef.h>

#include <lab/alloc.h>

#include "app/faults.h"

/* Whether this request makes fault f (srv_faults_hit in the server). */
typedef bool (*srv_echo_hit_fn)(srv_fault_t f);

/* The answer to body[0..len) (need not be NUL-terminated), a JSON object:
 * "echo" (the document), "type" (object, array, string, number, boolean
 * or null), "members" (of an object or array, else 0), "nodes" (values in
 * the tree, the root included) and "bytes" (len). On success *out is a
 * NUL-terminated lab heap block charged to `site` (NULL: "echo.response")
 * that the caller frees, *out_len its length. Otherwise *out is NULL, the
 * message is in why[0..whylen) and the result is SRV_EINVAL (not one JSON
 * value), SRV_ERANGE (a number beyond a double, which cJSON would print as
 * null) or SRV_ENOMEM. `hit` decides the faults (NULL: none). cJSON
 * must allocate from the lab heap (lab_cjson_install()). */
int srv_echo_transform(const char *body, size_t len, srv_echo_hit_fn hit,
                       const lab_site_t *site, char **out, size_t *out_len,
                       char *why, size_t whylen);

#endif /* SRV_ECHO_H */

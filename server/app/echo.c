/* echo.c - the /echo transform and its faults. Each fault is the mistake
 * as it is usually written; `hit` decides, per request, whether this
 * request makes it. */
#include "app/echo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/parse.h"

static bool srv__hit(srv_echo_hit_fn hit, srv_fault_t f) {
  return hit && hit(f);
}

static const char *srv__json_type(const cJSON *v) {
  if (cJSON_IsObject(v)) return "object";
  if (cJSON_IsArray(v)) return "array";
  if (cJSON_IsString(v)) return "string";
  if (cJSON_IsNumber(v)) return "number";
  if (cJSON_IsBool(v)) return "boolean";
  return "null";
}

/* Nodes in a tree, the root included (cJSON bounds the depth). */
static size_t srv__json_nodes(const cJSON *v) {
  size_t n = 1;
  for (const cJSON *c = v->child; c; c = c->next) n += srv__json_nodes(c);
  return n;
}

/* Whether every number in the tree is finite: cJSON reads 1e999 as
 * infinity and prints it as null, which would echo another document. */
static bool srv__json_finite(const cJSON *v) {
  if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) return false;
  for (const cJSON *c = v->child; c; c = c->next)
    if (!srv__json_finite(c)) return false;
  return true;
}

/* cJSON 1.7.15 prints every number with sprintf("%1.15g") and reads it
 * back with sscanf to check, about 0.3 us a number: it was the largest
 * single part of what /echo does. An integer of at most 15 digits prints
 * as its plain digits under "%1.15g", so while the answer is printed each
 * such number is a raw node whose text is written here, into a buffer on
 * the stack, and then a number again. The answer is the same byte for
 * byte (tests/fuzz/fuzz_echo.c checks it); -0, other numbers and those
 * the buffer has no room for are printed by cJSON. */
typedef struct srv__digits {
  char buf[1024];
  size_t used;
} srv__digits_t;

#define SRV__RAW_REF (cJSON_Raw | cJSON_IsReference)

/* The digits of n, NUL-terminated, in d's buffer; NULL without room. */
static const char *srv__digits(srv__digits_t *d, long long n) {
  char tmp[21], *p = tmp + sizeof tmp;
  *--p = '\0';
  unsigned long long u = (unsigned long long)n;
  if (n < 0) u = 0ull - u;
  do *--p = (char)('0' + u % 10); while (u /= 10);
  if (n < 0) *--p = '-';
  size_t k = (size_t)(tmp + sizeof tmp - p);
  if (k > sizeof d->buf - d->used) return NULL;
  char *out = memcpy(d->buf + d->used, p, k);
  d->used += k;
  return out;
}

/* Make v a raw node printing as text, which it does not own. */
static void srv__set_raw(cJSON *v, const char *text) {
  v->valuestring = (char *)text;
  v->type = (v->type & ~0xff) | SRV__RAW_REF;
}

/* Each integer in v and below it, made raw (see above). */
static void srv__ints_raw(cJSON *v, srv__digits_t *d) {
  for (cJSON *c = v->child; c; c = c->next) srv__ints_raw(c, d);
  double x = v->valuedouble;
  if ((v->type & 0xff) != cJSON_Number || !(x > -1e15 && x < 1e15) ||
      x != (double)(long long)x || (x == 0 && signbit(x)))
    return;
  const char *text = srv__digits(d, (long long)x);
  if (text) srv__set_raw(v, text);
}

/* Undo srv__ints_raw: numbers again, as cJSON parsed them. */
static void srv__ints_restore(cJSON *v) {
  for (cJSON *c = v->child; c; c = c->next) srv__ints_restore(c);
  if ((v->type & SRV__RAW_REF) != SRV__RAW_REF) return;
  v->type = (v->type & ~(0xff | cJSON_IsReference)) | cJSON_Number;
  v->valuestring = NULL;
}

/* Add a member under a constant key holding the count n, or a constant
 * string (n unused); false on OOM. The node is the only allocation. */
static bool srv__add(cJSON *doc, const char *key, const char *str, size_t n,
                     srv__digits_t *d) {
  const char *text = str ? str : srv__digits(d, (long long)n);
  cJSON *v = text ? cJSON_CreateStringReference(text) : NULL;
  if (!v) return false;
  if (!str) srv__set_raw(v, text);
  if (cJSON_AddItemToObjectCS(doc, key, v)) return true;
  cJSON_Delete(v); /* a reference: only the node is freed */
  return false;
}

/* Print the answer around `tree` (which stays the caller's and comes back
 * as it was); NULL on OOM. Every member must make it: a document missing
 * one is no answer. */
static char *srv__echo_print(cJSON *tree, size_t len, const lab_site_t *site) {
  const lab_site_t *doc_site = LAB_SITE("echo.doc");
  const lab_site_t *prev = lab_hook_site(doc_site);
  char *text = NULL;
  srv__digits_t digits;
  digits.used = 0;
  cJSON *doc = cJSON_CreateObject();
  /* A constant key allocates nothing, so adding the tree cannot fail
   * half-way and leave it owned by the answer. */
  if (!doc || !cJSON_AddItemToObjectCS(doc, "echo", tree)) goto out_delete_doc;
  bool whole =
      srv__add(doc, "type", srv__json_type(tree), 0, &digits) &&
      srv__add(doc, "members", NULL, (size_t)cJSON_GetArraySize(tree),
               &digits) &&
      srv__add(doc, "nodes", NULL, srv__json_nodes(tree), &digits) &&
      srv__add(doc, "bytes", NULL, len, &digits);
  if (whole) {
    srv__ints_raw(tree, &digits);
    lab_hook_site(site ? site : LAB_SITE("echo.response"));
    /* Printed straight into a buffer of about the answer's size: cJSON
     * grows it if need be, and hands it over without a final copy. */
    text = cJSON_PrintBuffered(doc, (int)(len < (1 << 20) ? 2 * len + 128
                                                          : (1 << 21)), 0);
    srv__ints_restore(tree);
  }
  lab_hook_site(doc_site);
  cJSON_DetachItemViaPointer(doc, tree); /* the tree is ours to delete */
  tree->string = NULL;
  tree->type &= ~cJSON_StringIsConst;
out_delete_doc:
  cJSON_Delete(doc);
  lab_hook_site(prev);
  return text;
}

int srv_echo_transform(const char *body, size_t len, srv_echo_hit_fn hit,
                       const lab_site_t *site, char **out, size_t *out_len,
                       char *why, size_t whylen) {
  *out = NULL;
  *out_len = 0;
  /* A NUL-terminated working copy of the body to parse from. */
  char *work = lab_try_malloc_at(len + 1, LAB_SITE("echo.body"));
  if (!work) {
    snprintf(why, whylen, "out of memory copying the request body");
    return SRV_ENOMEM;
  }
  if (len) memcpy(work, body, len);
  work[len] = '\0';

  cJSON *tree = srv_parse_json(work, len, LAB_SITE("echo.tree"));
  if (!tree) {
    /* The mistake: an early return on the error path that skips the free. */
    if (!srv__hit(hit, SRV_FAULT_echo_leak_on_error))
      lab_free_at(work, LAB_SITE("echo.free"));
    snprintf(why, whylen, "malformed JSON in the request body");
    return SRV_EINVAL;
  }

  if (!srv__json_finite(tree)) {
    cJSON_Delete(tree);
    lab_free_at(work, LAB_SITE("echo.free"));
    snprintf(why, whylen, "a number in the request body is beyond the "
                          "range of a double");
    return SRV_ERANGE;
  }

  /* The answer: the document, what it is and how big. */
  char *text = srv__echo_print(tree, len, site);

  /* The mistake: forget the tree. */
  if (!srv__hit(hit, SRV_FAULT_echo_leak_tree)) cJSON_Delete(tree);
  /* The mistake: free the parse cursor, one past the start of the block. */
  char *cursor = work + 1;
  if (srv__hit(hit, SRV_FAULT_echo_free_interior))
    lab_free_at(cursor, LAB_SITE("echo.free"));
  else
    lab_free_at(work, LAB_SITE("echo.free"));

  if (!text) {
    snprintf(why, whylen, "out of memory printing the answer");
    return SRV_ENOMEM;
  }
  *out = text;
  *out_len = strlen(text);
  return SRV_OK;
}

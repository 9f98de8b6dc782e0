/* echo.c - the /echo transform and its faults. Each fault is the mistake
 * as it is usually written; `hit` decides, per request, whether this
 * request makes it. */
#include "echo.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "parse.h"

static bool srv__hit(srv_echo_hit_fn hit, srv_flag_t f) {
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

/* The digits of n, NUL-terminated, in buf[0..21); returns buf. */
static char *srv__digits(long long n, char buf[21]) {
  char *p = buf + 20;
  *p = '\0';
  unsigned long long u = (unsigned long long)n;
  if (n < 0) u = 0ull - u;
  do *--p = (char)('0' + u % 10); while (u /= 10);
  if (n < 0) *--p = '-';
  return p;
}

/* cJSON 1.7.15 prints every number with sprintf("%1.15g") and reads it
 * back with sscanf to check: about 0.3 us a number, the largest single
 * part of what /echo does. An integer of at most 15 digits prints as its
 * plain digits under "%1.15g", so each such number becomes a raw node
 * holding them, written here: the answer is the same byte for byte
 * (tests/fuzz/fuzz_echo.c checks it). -0 and every
 * other number stay cJSON's; so does one whose text cannot be allocated.
 * Done to v and every value below it. */
static void srv__json_ints_raw(cJSON *v) {
  for (cJSON *c = v->child; c; c = c->next) srv__json_ints_raw(c);
  double d = v->valuedouble;
  if (v->type != cJSON_Number || !(d > -1e15 && d < 1e15) ||
      d != (double)(long long)d || (d == 0 && signbit(d)))
    return;
  char buf[21], *txt = srv__digits((long long)d, buf);
  size_t n = (size_t)(buf + 21 - txt);
  char *raw = cJSON_malloc(n);
  if (!raw) return;
  memcpy(raw, txt, n);
  v->valuestring = raw;
  v->type = cJSON_Raw;
}

/* Adds the count n to doc as `key`, its digits written here (see
 * srv__json_ints_raw); false on OOM. */
static bool srv__add_count(cJSON *doc, const char *key, size_t n) {
  char buf[21];
  return cJSON_AddRawToObject(doc, key, srv__digits((long long)n, buf)) != NULL;
}

/* Print the answer around `tree` (which stays the caller's, its integers
 * made raw at tree_site); NULL on OOM. Every member must make it: a
 * document missing one is no answer. */
static char *srv__echo_print(cJSON *tree, size_t len, const lab_site_t *site,
                             const lab_site_t *tree_site) {
  const lab_site_t *doc_site = LAB_SITE("echo.doc");
  const lab_site_t *prev = lab_hook_site(doc_site);
  char *text = NULL;
  cJSON *doc = cJSON_CreateObject();
  /* A constant key allocates nothing, so adding the tree cannot fail
   * half-way and leave it owned by the answer. */
  if (!doc || !cJSON_AddItemToObjectCS(doc, "echo", tree)) goto out_delete_doc;
  bool whole =
      cJSON_AddStringToObject(doc, "type", srv__json_type(tree)) &&
      srv__add_count(doc, "members", (size_t)cJSON_GetArraySize(tree)) &&
      srv__add_count(doc, "nodes", srv__json_nodes(tree)) &&
      srv__add_count(doc, "bytes", len);
  if (whole) {
    lab_hook_site(tree_site);
    srv__json_ints_raw(tree);
    lab_hook_site(site ? site : LAB_SITE("echo.response"));
    text = cJSON_PrintUnformatted(doc);
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
  char *work = lab_malloc_named(len + 1, "echo.body");
  if (len) memcpy(work, body, len);
  work[len] = '\0';

  const lab_site_t *tree_site = LAB_SITE("echo.tree");
  cJSON *tree = srv_parse_json(work, len, tree_site);
  if (!tree) {
    /* The mistake: an early return on the error path that skips the free. */
    if (!srv__hit(hit, SRV_FLAG_echo_leak_on_error))
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
  char *text = srv__echo_print(tree, len, site, tree_site);

  /* The mistake: forget the tree. */
  if (!srv__hit(hit, SRV_FLAG_echo_leak_tree)) cJSON_Delete(tree);
  /* The mistake: free the parse cursor, one past the start of the block. */
  char *cursor = work + 1;
  if (srv__hit(hit, SRV_FLAG_echo_free_interior))
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

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

/* Print the answer around `tree` (which stays the caller's); NULL on OOM.
 * Every member must make it: a document missing one is no answer. */
static char *srv__echo_print(cJSON *tree, size_t len, const lab_site_t *site) {
  const lab_site_t *doc_site = LAB_SITE("echo.doc");
  const lab_site_t *prev = lab_hook_site(doc_site);
  char *text = NULL;
  cJSON *doc = cJSON_CreateObject();
  /* A constant key allocates nothing, so adding the tree cannot fail
   * half-way and leave it owned by the answer. */
  if (!doc || !cJSON_AddItemToObjectCS(doc, "echo", tree)) goto out_delete_doc;
  bool whole =
      cJSON_AddStringToObject(doc, "type", srv__json_type(tree)) &&
      cJSON_AddNumberToObject(doc, "members", cJSON_GetArraySize(tree)) &&
      cJSON_AddNumberToObject(doc, "nodes", (double)srv__json_nodes(tree)) &&
      cJSON_AddNumberToObject(doc, "bytes", (double)len);
  lab_hook_site(site ? site : LAB_SITE("echo.response"));
  if (whole) text = cJSON_PrintUnformatted(doc);
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

  cJSON *tree = srv_parse_json(work, len, LAB_SITE("echo.tree"));
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
  char *text = srv__echo_print(tree, len, site);

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

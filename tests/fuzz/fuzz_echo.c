/* libFuzzer target: POST /echo, without HTTP: the input is the body, given
 * to srv_echo_transform as the handler gives it, with no fault on.
 *
 * Checked: the body is answered only when cJSON takes all of it as one
 * value, and refused when a number in it is beyond a double (cJSON would
 * print it as null); the answer is one JSON object with exactly the
 * documented members ("echo" the body's document, "type", "members",
 * "nodes", "bytes"), each agreeing with the document, and byte for byte
 * what cJSON itself prints for that object (the echo writes integers
 * itself, for speed); a failure has a
 * message and no answer. Each input runs again with one of cJSON's
 * allocations failing: the same answer or a clean failure, never an
 * answer with a member missing. Nothing stays live on the heap and the
 * heap catches nothing. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "app/echo.h"
#include "core/err.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  return 0;
}

/* Values in a tree, the root included. */
static size_t nodes(const cJSON *v) {
  size_t n = 1;
  for (const cJSON *c = v->child; c; c = c->next) n += nodes(c);
  return n;
}

/* Whether no number in the tree is infinite (what 1e999 reads as). */
static bool all_finite(const cJSON *v) {
  if ((v->type & 0xff) == cJSON_Number && !isfinite(v->valuedouble))
    return false;
  for (const cJSON *c = v->child; c; c = c->next)
    if (!all_finite(c)) return false;
  return true;
}

/* Whether two values are the same, member for member in order (unlike
 * cJSON_Compare, which finds members by name and so cannot tell
 * documents with duplicate keys apart) and numbers to cJSON's precision. */
static bool same(const cJSON *a, const cJSON *b) {
  if ((a->type & 0xff) != (b->type & 0xff)) return false;
  /* cJSON prints 15 digits when they read back within an epsilon, so a
   * number may come back one unit in the last place off. */
  if (cJSON_IsNumber(a) &&
      fabs(a->valuedouble - b->valuedouble) >
          fmax(fabs(a->valuedouble), fabs(b->valuedouble)) * DBL_EPSILON)
    return false;
  if (cJSON_IsString(a) && strcmp(a->valuestring, b->valuestring)) return false;
  const cJSON *x = a->child, *y = b->child;
  for (; x && y; x = x->next, y = y->next) {
    if (!x->string != !y->string) return false;
    if (x->string && strcmp(x->string, y->string)) return false;
    if (!same(x, y)) return false;
  }
  return !x && !y;
}

/* The "type" the answer documents for v. */
static const char *type(const cJSON *v) {
  switch (v->type & 0xff) {
  case cJSON_Object: return "object";
  case cJSON_Array: return "array";
  case cJSON_String: return "string";
  case cJSON_Number: return "number";
  case cJSON_True:
  case cJSON_False: return "boolean";
  case cJSON_NULL: return "null";
  }
  return "?";
}

/* The number member `key` of the answer. */
static double number(const cJSON *doc, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
  FUZZ_CHECK(cJSON_IsNumber(v), "echo: '%s' is not a number", key);
  return v->valuedouble;
}

/* The answer text[0..len) to a body whose document is `body`. */
static void check_answer(const char *text, size_t len, const cJSON *body,
                         size_t size) {
  FUZZ_CHECK(strlen(text) == len, "echo: length %zu, text of %zu", len,
             strlen(text));
  cJSON *doc = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
  FUZZ_CHECK(doc && cJSON_IsObject(doc),
             "echo: the answer is not a JSON object: %.200s", text);
  static const char *const members[] = {"echo", "type", "members", "nodes",
                                        "bytes"};
  int seen = 0, k = 0;
  for (const cJSON *m = doc->child; m; m = m->next, k++)
    for (int i = 0; i < 5; i++)
      if (!strcmp(m->string, members[i])) seen |= 1 << i;
  FUZZ_CHECK(k == 5 && seen == 31, "echo: not the five members: %.200s", text);
  const cJSON *echo = cJSON_GetObjectItemCaseSensitive(doc, "echo");
  FUZZ_CHECK(same(echo, body),
             "echo: 'echo' is not the document sent: %.200s", text);
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "type");
  FUZZ_CHECK(cJSON_IsString(t) && !strcmp(t->valuestring, type(body)),
             "echo: type of a %s given as %s", type(body),
             cJSON_IsString(t) ? t->valuestring : "?");
  FUZZ_CHECK(number(doc, "members") == cJSON_GetArraySize(body),
             "echo: members %g, not %d", number(doc, "members"),
             cJSON_GetArraySize(body));
  FUZZ_CHECK(number(doc, "nodes") == (double)nodes(body),
             "echo: nodes %g, not %zu", number(doc, "nodes"), nodes(body));
  FUZZ_CHECK(number(doc, "bytes") == (double)size, "echo: bytes %g, not %zu",
             number(doc, "bytes"), size);
  cJSON_Delete(doc);

  /* The same object, put together and printed by cJSON alone. */
  cJSON *ref = cJSON_CreateObject();
  cJSON_AddItemToObject(ref, "echo", cJSON_Duplicate(body, 1));
  cJSON_AddStringToObject(ref, "type", type(body));
  cJSON_AddNumberToObject(ref, "members", cJSON_GetArraySize(body));
  cJSON_AddNumberToObject(ref, "nodes", (double)nodes(body));
  cJSON_AddNumberToObject(ref, "bytes", (double)size);
  char *want = cJSON_PrintUnformatted(ref);
  FUZZ_CHECK(want && !strcmp(text, want),
             "echo: the answer is not what cJSON prints:\n%.300s\n%.300s",
             text, want ? want : "(out of memory)");
  cJSON_free(want);
  cJSON_Delete(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_mark_t mark;
  fuzz_begin(&mark);

  /* The reference: cJSON with its own end check, on a NUL-terminated
   * copy without NUL bytes inside. */
  fuzz_fail_at = 0;
  char *copy = fuzz_cstr(data, size);
  cJSON *body = size && !memchr(data, '\0', size)
                    ? cJSON_ParseWithLengthOpts(copy, size + 1, NULL, 1)
                    : NULL;
  free(copy);

  char *text, why[128] = "";
  size_t len;
  fuzz_allocs = 0;
  int err = srv_echo_transform((const char *)data, size, NULL, NULL, &text,
                               &len, why, sizeof why);
  uint64_t allocs = fuzz_allocs;
  if (body && !all_finite(body)) {
    FUZZ_CHECK(err == SRV_ERANGE && !text && why[0],
               "echo: a number beyond a double gave %d (%s)", err, why);
  } else if (body) {
    FUZZ_CHECK(!err && text, "echo: a JSON body refused (%d: %s)", err, why);
    check_answer(text, len, body, size);
  } else {
    FUZZ_CHECK(err == SRV_EINVAL && !text && why[0],
               "echo: what is not JSON gave %d (%s)", err, why);
  }

  /* Again, with one of cJSON's allocations failing. */
  if (allocs) {
    char *oom_text, oom_why[128] = "";
    size_t oom_len;
    fuzz_allocs = 0;
    fuzz_fail_at = 1 + fuzz_hash(data, size) % allocs;
    int oom_err = srv_echo_transform((const char *)data, size, NULL, NULL,
                                     &oom_text, &oom_len, oom_why,
                                     sizeof oom_why);
    fuzz_fail_at = 0;
    if (oom_err) {
      FUZZ_CHECK((oom_err == SRV_EINVAL || oom_err == SRV_ENOMEM ||
                  oom_err == err) &&
                     !oom_text && oom_why[0],
                 "echo: out of memory gave %d (%s)", oom_err, oom_why);
    } else {
      FUZZ_CHECK(text && oom_len == len && !memcmp(oom_text, text, len),
                 "echo: out of memory, a different answer: %.200s", oom_text);
    }
    lab_free(oom_text);
  }
  lab_free(text);
  cJSON_Delete(body);
  fuzz_end(&mark, "echo");
  return 0;
}

/* libFuzzer target: PATCH /api/flags with a JSON body, without HTTP: the
 * input is the body, as srv_flags_parse_patch gets it from the handler.
 *
 * Checked against a model written here from flags.h's rules: the body is
 * taken only when cJSON takes all of it as one value; an object's members
 * become changes in order, or the first bad member fails the whole body
 * with the error the rules give; a success reads back the same from a
 * query and from JSON; a failure leaves nothing to apply and a message fit
 * to send. Each input runs again with one of cJSON's allocations failing:
 * the same answer or a clean failure. Nothing stays live on the heap. */
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "observe/flags.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_setup_flags();
  return 0;
}

/* The rules for one member: its flag's value into *v, or the error. */
static int model_value(srv_flag_t f, const cJSON *m, double *v) {
  srv_flag_type_t t = srv_flags_type(f);
  bool whole = t == SRV_FLAG_BYTES || t == SRV_FLAG_REQUESTS;
  if (cJSON_IsBool(m) && !whole) {
    *v = cJSON_IsTrue(m) ? 1 : 0;
    return 0;
  }
  if (!cJSON_IsNumber(m)) return SRV_EINVAL;
  double x = m->valuedouble;
  switch (t) {
  case SRV_FLAG_RATE:
    if (!(x >= 0 && x <= 1)) return SRV_ERANGE;
    break;
  case SRV_FLAG_BOOL:
    if (x != 0 && x != 1) return SRV_EINVAL;
    break;
  case SRV_FLAG_BYTES:
  case SRV_FLAG_REQUESTS:
    if (!(x >= 0 && x <= 9007199254740992.0)) return SRV_ERANGE;
    if (x != (double)(uint64_t)x) return SRV_EINVAL;
    break;
  }
  *v = x == 0 ? 0 : x;
  return 0;
}

/* The rules for a whole document: the changes into *want, or the error
 * and the member at fault. */
static int model(const cJSON *doc, srv_flags_change_t *want,
                 const char **bad) {
  want->n = 0;
  *bad = NULL;
  if (!cJSON_IsObject(doc)) return SRV_EINVAL;
  for (const cJSON *m = doc->child; m; m = m->next) {
    *bad = m->string;
    int f = srv_flags_find(m->string);
    if (f < 0) return SRV_ENOENT;
    if (want->n == SRV_FLAGS_MAX_CHANGES) return SRV_E2BIG;
    int err = model_value((srv_flag_t)f, m, &want->values[want->n]);
    if (err) return err;
    want->ids[want->n++] = (srv_flag_t)f;
  }
  *bad = NULL;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static srv_flags_change_t c, want;
  fuzz_mark_t mark;
  fuzz_begin(&mark);
  char *body = fuzz_cstr(data, size);

  /* cJSON's own end check (it wants the NUL counted in the length) is the
   * reference for "the whole body is one JSON value". */
  fuzz_fail_at = 0;
  cJSON *doc = size && !memchr(data, '\0', size)
                   ? cJSON_ParseWithLengthOpts(body, size + 1, NULL, 1)
                   : NULL;
  const char *bad = NULL;
  int want_err = doc ? model(doc, &want, &bad) : SRV_EINVAL;

  fuzz_allocs = 0;
  int err = srv_flags_parse_patch(body, size, &c);
  uint64_t allocs = fuzz_allocs;
  fuzz_check_change(err, &c, "json");
  FUZZ_CHECK(err == want_err, "json: error %d where the rules give %d (%s)",
             err, want_err, c.why);
  if (!err) {
    FUZZ_CHECK(fuzz_same_change(&c, &want),
               "json: changes differ from the rules'");
    fuzz_round_trip(&c, fuzz_hash(data, size), "json");
  } else if (bad && fuzz_utf8(bad) && strlen(bad) < sizeof c.flag) {
    FUZZ_CHECK(!strcmp(c.flag, bad), "json: fault in '%s' reported as '%s'",
               bad, c.flag);
  }
  cJSON_Delete(doc);

  /* Again, with one of cJSON's allocations failing. */
  if (allocs) {
    static srv_flags_change_t oom;
    fuzz_allocs = 0;
    fuzz_fail_at = 1 + fuzz_hash(data, size) % allocs;
    int oom_err = srv_flags_parse_patch(body, size, &oom);
    fuzz_fail_at = 0;
    fuzz_check_change(oom_err, &oom, "json, out of memory");
    FUZZ_CHECK(oom_err == SRV_EINVAL ||
                   (oom_err == err && fuzz_same_change(&oom, &c)),
               "json: out of memory gave %d (%s)", oom_err, oom.why);
  }
  free(body);
  fuzz_end(&mark, "json");
  return 0;
}

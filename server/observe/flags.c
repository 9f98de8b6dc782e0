/* flags.c - fault and guard flags: values in the shared region, parsing
 * (one value, or a request's changes as a whole), and the per-request
 * draw. */
#include "observe/flags.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "core/parse.h"
#include "core/rand.h"
#include "core/shm.h"
#include "observe/events.h"

/* The block this module owns in the region. */
typedef struct srv__flags_block {
  _Atomic uint64_t values[SRV_FLAGS_MAX]; /* as double bits */
  _Atomic uint64_t version;               /* bumped on every change */
} srv__flags_block_t;

static srv__flags_block_t *srv__fb;
static const srv_flag_def_t *srv__flags[SRV_FLAGS_MAX];
static int srv__nflags;

/* Serialises writers so a change of several flags is applied as a whole. */
static pthread_mutex_t srv__flags_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t srv__bits(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  return u;
}

static double srv__double(uint64_t u) {
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

int srv_flags_setup(void) {
  srv__fb = srv_shm_alloc(sizeof *srv__fb);
  return srv__fb ? SRV_OK : SRV_ENOMEM;
}

int srv_flags_register(const srv_flag_def_t *defs, int n, srv_flag_t *first) {
  if (n < 0 || n > SRV_FLAGS_MAX - srv__nflags) return SRV_E2BIG;
  for (int i = 0; i < n; i++) {
    if (!defs[i].name || srv_flags_find(defs[i].name) >= 0) return SRV_EINVAL;
    for (int k = 0; k < i; k++)
      if (!strcmp(defs[k].name, defs[i].name)) return SRV_EINVAL;
  }
  if (first) *first = srv__nflags;
  for (int i = 0; i < n; i++) {
    srv__flags[srv__nflags] = &defs[i];
    if (srv__fb)
      atomic_store(&srv__fb->values[srv__nflags], srv__bits(defs[i].def));
    srv__nflags++;
  }
  return SRV_OK;
}

int srv_flags_count(void) { return srv__nflags; }

void srv_flags_unregister_all(void) { srv__nflags = 0; }

uint64_t srv_flags_version(void) {
  return srv__fb ? atomic_load(&srv__fb->version) : 0;
}

/* Every flag back to its default. */
static void srv__defaults(void) {
  for (int f = 0; f < srv__nflags; f++)
    atomic_store(&srv__fb->values[f], srv__bits(srv__flags[f]->def));
}

double srv_flags_get(srv_flag_t f) {
  return srv__double(
      atomic_load_explicit(&srv__fb->values[f], memory_order_relaxed));
}

bool srv_flags_on(srv_flag_t f) { return srv_flags_get(f) != 0; }

uint64_t srv_flags_u64(srv_flag_t f) {
  double v = srv_flags_get(f);
  return v > 0 ? (uint64_t)v : 0;
}

bool srv_flags_hit(srv_flag_t f) {
  double rate = srv_flags_get(f);
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  return srv_rand_uniform() < rate;
}

int srv_flags_find(const char *name) {
  if (!name) return SRV_ENOENT;
  for (int f = 0; f < srv__nflags; f++)
    if (!strcmp(srv__flags[f]->name, name)) return f;
  return SRV_ENOENT;
}

const char *srv_flags_name(srv_flag_t f) { return srv__flags[f]->name; }
srv_flag_type_t srv_flags_type(srv_flag_t f) { return srv__flags[f]->type; }
double srv_flags_default(srv_flag_t f) { return srv__flags[f]->def; }
const char *srv_flags_desc(srv_flag_t f) { return srv__flags[f]->desc; }
const char *srv_flags_mistake(srv_flag_t f) { return srv__flags[f]->mistake; }

const char *srv_flags_kind(srv_flag_t f) {
  return srv__flags[f]->type == SRV_FLAG_RATE ? "fault" : "guard";
}

const char *srv_flags_type_name(srv_flag_t f) {
  switch (srv__flags[f]->type) {
  case SRV_FLAG_RATE: return "rate";
  case SRV_FLAG_BOOL: return "bool";
  case SRV_FLAG_BYTES: return "bytes";
  case SRV_FLAG_REQUESTS: return "requests";
  }
  return "unknown";
}

/* What a flag accepts, for error messages. */
static const char *srv__accepts(srv_flag_t f) {
  switch (srv__flags[f]->type) {
  case SRV_FLAG_RATE: return "a rate from 0 to 1, or true/false";
  case SRV_FLAG_BOOL: return "true or false";
  case SRV_FLAG_BYTES: return "a whole number of bytes (0 = off)";
  case SRV_FLAG_REQUESTS: return "a whole number of requests (0 = off)";
  }
  return "?";
}

#define SRV__MAX_WHOLE 9007199254740992.0 /* 2^53: exact in a double */

static int srv__wrong_type(srv_flag_t f, char *why, size_t whylen) {
  snprintf(why, whylen, "wrong type of value for flag '%s': it takes %s",
           srv__flags[f]->name, srv__accepts(f));
  return SRV_EINVAL;
}

/* Check a number against the flag's range. */
static int srv__check_number(srv_flag_t f, double v, double *out, char *why,
                             size_t whylen) {
  switch (srv__flags[f]->type) {
  case SRV_FLAG_RATE:
    if (!(v >= 0 && v <= 1)) goto range;
    break;
  case SRV_FLAG_BOOL:
    if (v != 0 && v != 1) goto type;
    break;
  case SRV_FLAG_BYTES:
  case SRV_FLAG_REQUESTS:
    if (!(v >= 0 && v <= SRV__MAX_WHOLE)) goto range;
    if (v != floor(v)) goto type;
    break;
  }
  *out = v + 0.0; /* -0 is 0 */
  return SRV_OK;
range:
  snprintf(why, whylen, "value out of range for flag '%s': it takes %s",
           srv__flags[f]->name, srv__accepts(f));
  return SRV_ERANGE;
type:
  return srv__wrong_type(f, why, whylen);
}

int srv_flags_parse_json(srv_flag_t f, const void *item, double *out,
                         char *why, size_t whylen) {
  const cJSON *v = item;
  bool numeric = srv__flags[f]->type == SRV_FLAG_BYTES ||
                 srv__flags[f]->type == SRV_FLAG_REQUESTS;
  if (cJSON_IsBool(v) && !numeric)
    return srv__check_number(f, cJSON_IsTrue(v) ? 1 : 0, out, why, whylen);
  if (cJSON_IsNumber(v))
    return srv__check_number(f, v->valuedouble, out, why, whylen);
  return srv__wrong_type(f, why, whylen);
}

int srv_flags_parse_text(srv_flag_t f, const char *text, double *out,
                         char *why, size_t whylen) {
  bool numeric = srv__flags[f]->type == SRV_FLAG_BYTES ||
                 srv__flags[f]->type == SRV_FLAG_REQUESTS;
  if (!text) text = "";
  if (!numeric && !strcmp(text, "true")) return srv__check_number(f, 1, out, why, whylen);
  if (!numeric && !strcmp(text, "false")) return srv__check_number(f, 0, out, why, whylen);
  char *end = NULL;
  double v;
  if (numeric) {
    /* Digits with an optional binary suffix: 64M, 64MiB, 1G, 512k. */
    if (*text < '0' || *text > '9') goto type;
    unsigned long long n = strtoull(text, &end, 10);
    unsigned long long mult = 1;
    if (*end && srv__flags[f]->type == SRV_FLAG_BYTES) {
      switch (*end) {
      case 'k': case 'K': mult = 1ull << 10; break;
      case 'm': case 'M': mult = 1ull << 20; break;
      case 'g': case 'G': mult = 1ull << 30; break;
      default: goto type;
      }
      end++;
      if (!strcmp(end, "iB") || !strcmp(end, "B")) end += strlen(end);
    }
    if (*end) goto type;
    /* Range-check the whole number before it becomes a double, which
     * would round 2^53 + 1 to 2^53 and let it pass. */
    if (n > (unsigned long long)SRV__MAX_WHOLE / mult)
      return srv__check_number(f, INFINITY, out, why, whylen);
    v = (double)(n * mult);
  } else {
    /* strtod skips leading white space; a value does not start with it. */
    if (!*text || isspace((unsigned char)*text)) goto type;
    v = strtod(text, &end);
    if (*end) goto type;
  }
  return srv__check_number(f, v, out, why, whylen);
type:
  return srv__wrong_type(f, why, whylen);
}

/* ---- a request's changes, all or nothing ---- */

void srv_flags_change_init(srv_flags_change_t *c) {
  c->n = 0;
  c->flag[0] = '\0';
  c->why[0] = '\0';
}

/* Empty c after a failure whose message is in c->why, naming the flag at
 * fault (when name is not NULL). */
static int srv__change_fail(srv_flags_change_t *c, int err, const char *name,
                            size_t name_len) {
  c->n = 0;
  if (name) srv_parse_utf8(c->flag, sizeof c->flag, name, name_len);
  else c->flag[0] = '\0';
  if (!c->why[0]) snprintf(c->why, sizeof c->why, "%s", srv_strerror(err));
  return err;
}

/* The flag named name[0..len), or SRV_ENOENT with the message in c. */
static int srv__change_find(srv_flags_change_t *c, const char *name,
                            size_t len) {
  int f = memchr(name, '\0', len) ? SRV_ENOENT : srv_flags_find(name);
  if (f < 0) {
    char quoted[65];
    srv_parse_utf8(quoted, sizeof quoted, name, len);
    snprintf(c->why, sizeof c->why, "unknown flag '%s'", quoted);
    return srv__change_fail(c, SRV_ENOENT, name, len);
  }
  if (c->n == SRV_FLAGS_MAX_CHANGES) {
    snprintf(c->why, sizeof c->why, "too many flag changes in one request");
    return srv__change_fail(c, SRV_E2BIG, name, len);
  }
  return f;
}

int srv_flags_change_add(srv_flags_change_t *c, const char *name,
                         size_t name_len, const char *value,
                         size_t value_len) {
  if (!name) name = "", name_len = 0;
  int f = srv__change_find(c, name, name_len);
  if (f < 0) return f;
  int err = value && memchr(value, '\0', value_len)
                ? srv__wrong_type((srv_flag_t)f, c->why, sizeof c->why)
                : srv_flags_parse_text((srv_flag_t)f, value, &c->values[c->n],
                                       c->why, sizeof c->why);
  if (err) return srv__change_fail(c, err, name, name_len);
  c->ids[c->n++] = (srv_flag_t)f;
  return SRV_OK;
}

static int srv__change_pair(void *ctx, const char *key, size_t key_len,
                            const char *value, size_t value_len) {
  return srv_flags_change_add(ctx, key, key_len, value, value_len);
}

int srv_flags_parse_query(const char *query, size_t len,
                          srv_flags_change_t *c) {
  srv_flags_change_init(c);
  int err = srv_parse_query(query, len, srv__change_pair, c);
  if (err && !c->why[0]) {
    snprintf(c->why, sizeof c->why, "a NUL byte in the query string");
    srv__change_fail(c, err, NULL, 0);
  }
  return err;
}

int srv_flags_parse_patch(const char *body, size_t len,
                          srv_flags_change_t *c) {
  srv_flags_change_init(c);
  if (!body || !len) {
    snprintf(c->why, sizeof c->why, "expected a JSON object of flag changes");
    return srv__change_fail(c, SRV_EINVAL, NULL, 0);
  }
  cJSON *doc = srv_parse_json(body, len, LAB_SITE("flags.request"));
  if (!doc) {
    snprintf(c->why, sizeof c->why, "malformed JSON in the request body");
    return srv__change_fail(c, SRV_EINVAL, NULL, 0);
  }
  int err = SRV_OK;
  if (!cJSON_IsObject(doc)) {
    snprintf(c->why, sizeof c->why, "expected a JSON object of flag changes");
    err = srv__change_fail(c, SRV_EINVAL, NULL, 0);
    goto out_delete_doc;
  }
  for (const cJSON *m = doc->child; m; m = m->next) {
    const char *name = m->string ? m->string : "";
    int f = srv__change_find(c, name, strlen(name));
    if (f < 0) {
      err = f;
      goto out_delete_doc;
    }
    err = srv_flags_parse_json((srv_flag_t)f, m, &c->values[c->n], c->why,
                               sizeof c->why);
    if (err) {
      srv__change_fail(c, err, name, strlen(name));
      goto out_delete_doc;
    }
    c->ids[c->n++] = (srv_flag_t)f;
  }
out_delete_doc:
  cJSON_Delete(doc);
  return err;
}

/* Append "name=value" to a change description, or " ..." once when the
 * rest does not fit. */
static void srv__describe(char *text, size_t cap, srv_flag_t f, double v) {
  size_t len = strlen(text);
  if (len >= 4 && !strcmp(text + len - 4, " ...")) return;
  char piece[96];
  int n = snprintf(piece, sizeof piece, "%s%s=%g", len ? ", " : "",
                   srv__flags[f]->name, v);
  if (n > 0 && len + (size_t)n + 5 <= cap) memcpy(text + len, piece, (size_t)n + 1);
  else if (len + 5 <= cap) memcpy(text + len, " ...", 5);
}

void srv_flags_set_many(const srv_flag_t *ids, const double *values,
                        size_t n) {
  char text[sizeof(((srv_event_t *)0)->text)] = "";
  pthread_mutex_lock(&srv__flags_lock);
  for (size_t i = 0; i < n; i++) {
    atomic_store(&srv__fb->values[ids[i]], srv__bits(values[i]));
    srv__describe(text, sizeof text, ids[i], values[i]);
  }
  atomic_fetch_add(&srv__fb->version, 1);
  pthread_mutex_unlock(&srv__flags_lock);
  if (n) srv_events_log(SRV_EVENT_flags, "%s", text);
}

void srv_flags_reset(void) {
  pthread_mutex_lock(&srv__flags_lock);
  srv__defaults();
  atomic_fetch_add(&srv__fb->version, 1);
  pthread_mutex_unlock(&srv__flags_lock);
  srv_events_log(SRV_EVENT_flags, "every flag back to its default");
}

void srv_flags_value_json(srv_json_t *j, const char *key, srv_flag_t f) {
  double v = srv_flags_get(f);
  if (srv__flags[f]->type == SRV_FLAG_BOOL) srv_json_bool(j, key, v != 0);
  else srv_json_f64(j, key, v);
}

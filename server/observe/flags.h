/* flags.h - the fault and guard flags, declared once.
 *
 * A fault `<endpoint>.<mistake>` switches one classic memory mistake on in
 * an app handler; its value is a rate: the share of requests that make the
 * mistake (0 = off, the default, 1 = every request; true/false = 1/0).
 * A guard `guard.<name>` is a boolean or a whole number of bytes or
 * requests, 0 meaning off; `worker.memory_limit_bytes` (the worker's heap
 * limit, guards/memlimit.h) is one of these too. Values live in the shared region so they
 * survive a worker recycle.
 *
 * The observer owns the registry and knows no flag: the demo app
 * registers its faults and the guards their switches at set-up. */
#ifndef SRV_FLAGS_H
#define SRV_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum srv_flag_type {
  SRV_FLAG_RATE,     /* fault: 0..1 */
  SRV_FLAG_BOOL,     /* guard: true/false */
  SRV_FLAG_BYTES,    /* guard: whole bytes, 0 = off */
  SRV_FLAG_REQUESTS  /* guard: whole requests, 0 = off */
} srv_flag_type_t;

/* One flag, as a layer registers it (its strings static). */
typedef struct srv_flag_def {
  const char *name;         /* "echo.leak_tree", "guard.budget_bytes" */
  srv_flag_type_t type;     /* what values it takes */
  double def;               /* its default */
  const char *desc;         /* one or two sentences on what it does */
  const char *mistake;      /* a fault's mistake; NULL for a guard */
} srv_flag_def_t;

/* A flag's index in the registry. */
typedef int srv_flag_t;

#define SRV_FLAGS_MAX 64 /* flags the region holds */

/* Make the flags' block in the region (values, version); SRV_ENOMEM.
 * Without it flags can still be registered and parsed (the fuzz targets),
 * not read or set. */
int srv_flags_setup(void);
/* Register n flags (defs kept by pointer: static); their indexes are
 * *first .. *first + n - 1. Their values start at their defaults.
 * SRV_E2BIG when the table is full, SRV_EINVAL when a name is taken.
 * Before the first fork. */
int srv_flags_register(const srv_flag_def_t *defs, int n, srv_flag_t *first);
/* Flags registered (indexes 0 .. count - 1). */
int srv_flags_count(void);
/* Forget every flag (tests). */
void srv_flags_unregister_all(void);
/* Version of the values, bumped on every change. */
uint64_t srv_flags_version(void);

/* The flag's current value. */
double srv_flags_get(srv_flag_t f);
/* Whether the flag is set (value != 0). */
bool srv_flags_on(srv_flag_t f);
/* The value of a numeric guard as a whole number. */
uint64_t srv_flags_u64(srv_flag_t f);
/* A per-request draw against a fault's rate (core/rand.h). */
bool srv_flags_hit(srv_flag_t f);

/* The flag named `name`, or SRV_ENOENT. */
int srv_flags_find(const char *name);
/* The flag's name ("echo.leak_tree"). */
const char *srv_flags_name(srv_flag_t f);
/* What kind of value it takes. */
srv_flag_type_t srv_flags_type(srv_flag_t f);
/* Its default value. */
double srv_flags_default(srv_flag_t f);
/* One or two sentences on what it does. */
const char *srv_flags_desc(srv_flag_t f);
/* For a fault, the mistake it illustrates; NULL for a guard. */
const char *srv_flags_mistake(srv_flag_t f);
/* "fault" or "guard". */
const char *srv_flags_kind(srv_flag_t f);
/* "rate", "bool", "bytes" or "requests". */
const char *srv_flags_type_name(srv_flag_t f);

/* Parse a value given as JSON (a cJSON item) for flag f into *out;
 * SRV_EINVAL (wrong type) or SRV_ERANGE, with a message naming the flag
 * in why[0..whylen). */
int srv_flags_parse_json(srv_flag_t f, const void *item, double *out,
                         char *why, size_t whylen);
/* The same for a value given as text (query string). */
int srv_flags_parse_text(srv_flag_t f, const char *text, double *out,
                         char *why, size_t whylen);

/* Most changes one request may carry (a flag named twice counts twice;
 * applied in order, the last value wins). */
#define SRV_FLAGS_MAX_CHANGES (SRV_FLAGS_MAX * 4)

/* The flag changes of one request, validated whole before any is applied
 * (by the caller, with srv_flags_set_many). */
typedef struct srv_flags_change {
  size_t n;                              /* changes; 0 after a failure */
  srv_flag_t ids[SRV_FLAGS_MAX_CHANGES]; /* the flag of each, in order */
  double values[SRV_FLAGS_MAX_CHANGES];  /* its value, in the flag's range */
  char flag[72];  /* after a failure, the name at fault (UTF-8, cut) or "" */
  char why[200];  /* after a failure, what is wrong; "" otherwise */
} srv_flags_change_t;

/* Make c an empty set of changes. */
void srv_flags_change_init(srv_flags_change_t *c);
/* Check one decoded query pair (value NULL: it had no '='; name[name_len]
 * and value[value_len] are NUL, as MHD and srv_parse_query hand them over)
 * and add it to c. SRV_ENOENT (unknown flag), SRV_E2BIG (more than
 * SRV_FLAGS_MAX_CHANGES), SRV_EINVAL (wrong type, or a NUL byte inside)
 * or SRV_ERANGE; a failure empties c and sets c->why and c->flag. */
int srv_flags_change_add(srv_flags_change_t *c, const char *name,
                         size_t name_len, const char *value,
                         size_t value_len);
/* Every change of a raw query string query[0..len) ("a=1&b=true", URL
 * encoded; split and decoded by srv_parse_query), all or nothing: 0 (c->n
 * may be 0: nothing given), SRV_EINVAL for a raw NUL byte, or the errors
 * of srv_flags_change_add; c is emptied on failure. */
int srv_flags_parse_query(const char *query, size_t len,
                          srv_flags_change_t *c);
/* Every change of a JSON object body[0..len) (body[len] NUL, as request
 * bodies are), all or nothing: 0, SRV_EINVAL (not one JSON object), or the
 * errors of srv_flags_change_add; c is emptied on failure. */
int srv_flags_parse_patch(const char *body, size_t len,
                          srv_flags_change_t *c);

/* Set n flags at once (already validated) and log one event. */
void srv_flags_set_many(const srv_flag_t *ids, const double *values, size_t n);
/* Every flag back to its default; logs one event. */
void srv_flags_reset(void);
/* Write the flag's value as JSON member `key` (a number, or true/false for
 * booleans). */
struct srv_json;
void srv_flags_value_json(struct srv_json *j, const char *key, srv_flag_t f);

#endif /* SRV_FLAGS_H */

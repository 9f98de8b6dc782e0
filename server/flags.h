/* flags.h - the fault and guard flags, declared once.
 *
 * A fault `<endpoint>.<mistake>` switches one classic memory mistake on in
 * an app handler; its value is a rate: the share of requests that make the
 * mistake (0 = off, the default, 1 = every request; true/false = 1/0).
 * A guard `guard.<name>` is a boolean or a whole number of bytes or
 * requests, 0 meaning off. Values live in the shared region so they
 * survive a worker recycle. */
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

/* X(id, name, type, default, description, mistake); mistake is NULL for
 * guards. */
#define SRV_FLAG_MAP(X)                                                      \
  X(hello_leak_response, "hello.leak_response", SRV_FLAG_RATE, 0,           \
    "GET /hello hands MHD a copy of its greeting and never frees its own "   \
    "buffer: the greeting's bytes stay live at site hello.response",         \
    "forgetting to free: the response buffer")                              \
  X(hello_off_by_one, "hello.off_by_one", SRV_FLAG_RATE, 0,                 \
    "GET /hello copies the name into malloc(strlen(name)): the terminating " \
    "NUL lands in the guard after the block, caught as an overflow at "      \
    "site hello.name when it is freed",                                      \
    "not allocating enough: strlen without + 1")                            \
  X(hello_free_stack, "hello.free_stack", SRV_FLAG_RATE, 0,                 \
    "GET /hello formats short greetings in a stack buffer and frees it as "  \
    "if it came from malloc: caught as an invalid free at hello.free",       \
    "invalid free: a stack address")                                        \
  X(echo_leak_tree, "echo.leak_tree", SRV_FLAG_RATE, 0,                     \
    "/echo never deletes the cJSON tree it parsed: every node and string "   \
    "of the document stays live at site echo.tree",                          \
    "forgetting to free: a whole cJSON tree per request")                   \
  X(echo_leak_on_error, "echo.leak_on_error", SRV_FLAG_RATE, 0,             \
    "POST /echo with invalid JSON returns 400 without freeing its copy of "  \
    "the body (site echo.body); valid requests do not leak",                 \
    "forgetting to free, only on the error path (bad JSON)")                \
  X(echo_free_interior, "echo.free_interior", SRV_FLAG_RATE, 0,             \
    "/echo frees its parse cursor (body + 1) instead of the body copy: "     \
    "caught as an invalid free, and the copy leaks at site echo.body",       \
    "invalid free: an interior pointer")                                    \
  X(session_unbounded_cache, "session.unbounded_cache", SRV_FLAG_RATE, 0,   \
    "POST /session skips the LRU eviction of the session cache: entries "    \
    "pile up at site session.entry, still reachable, so a leak checker "     \
    "sees no leak; turning it off evicts back to the bound",                 \
    "a logical leak: a cache that grows without bound")                     \
  X(blob_free_early, "blob.free_early", SRV_FLAG_RATE, 0,                   \
    "GET /blob frees its buffer before sending it and then writes its "      \
    "trailer into it: the body shows the heap's free poison (0xDD) and the " \
    "late write is caught as a write after free (site blob.buffer)",         \
    "freeing before done: the response freed before it is sent")            \
  X(blob_double_free, "blob.double_free", SRV_FLAG_RATE, 0,                 \
    "GET /blob frees its scratch buffer in the loop and again in the "       \
    "cleanup: the second free is caught as a double free (site "             \
    "blob.scratch)",                                                         \
    "freeing twice")                                                        \
  X(report_uninit, "report.uninit", SRV_FLAG_RATE, 0,                       \
    "GET /report allocates its records with malloc instead of calloc: the "  \
    "hex dump shows the fill pattern a5 in the fields it never set",         \
    "forgetting to initialise: malloc instead of calloc")                   \
  X(report_grow_leak, "report.grow_leak", SRV_FLAG_RATE, 0,                 \
    "GET /report grows its text buffer by malloc + copy and forgets the "    \
    "old block: every growth step leaks the previous buffer (site "          \
    "report.text)",                                                          \
    "forgetting to free: growth that loses the old block")                  \
  X(guard_request_scope, "guard.request_scope", SRV_FLAG_BOOL, 0,           \
    "when a request ends, free every block it allocated and did not free "   \
    "or detach (the request scope reclaims it); contains every fault leak "  \
    "except the session cache, whose entries are detached on purpose",       \
    NULL)                                                                    \
  X(guard_budget_bytes, "guard.budget_bytes", SRV_FLAG_BYTES, 0,            \
    "memory budget for the heap's live bytes: app endpoints answer 503 "     \
    "while the heap is over it (0 = off); /api/leaks reports the time to "   \
    "reach it",                                                              \
    NULL)                                                                    \
  X(guard_recycle_rss_bytes, "guard.recycle_rss_bytes", SRV_FLAG_BYTES, 0,  \
    "replace the worker before its RSS passes this many bytes, less up to "  \
    "10 % at random per worker (0 = off): the next worker starts on the "    \
    "same socket, the old one answers what it still has with Connection: "   \
    "close and exits, and the OS takes back all it leaked; no effect with "  \
    "--single-process",                                                      \
    NULL)                                                                    \
  X(guard_recycle_requests, "guard.recycle_requests", SRV_FLAG_REQUESTS, 0, \
    "replace the worker after it has answered this many requests, give or "  \
    "take 10 % at random per worker so a fleet does not recycle in "         \
    "lockstep (0 = off); no effect with --single-process",                   \
    NULL)

typedef enum srv_flag {
#define SRV__FLAG_ENUM(id, name, type, def, desc, mistake) SRV_FLAG_##id,
  SRV_FLAG_MAP(SRV__FLAG_ENUM)
#undef SRV__FLAG_ENUM
  SRV_FLAG_COUNT
} srv_flag_t;

/* Put every flag to its default (at start, in the shared region). */
void srv_flags_init(void);
/* The flag's current value. */
double srv_flags_get(srv_flag_t f);
/* Whether the flag is set (value != 0). */
bool srv_flags_on(srv_flag_t f);
/* The value of a numeric guard as a whole number. */
uint64_t srv_flags_u64(srv_flag_t f);
/* A per-request draw against a fault's rate (thread-local xorshift). */
bool srv_flags_hit(srv_flag_t f);
/* The next number from the calling thread's generator. */
uint64_t srv_flags_random(void);
/* A number in [0, 1) from the same generator. */
double srv_flags_uniform(void);

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
#define SRV_FLAGS_MAX_CHANGES (SRV_FLAG_COUNT * 4)

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

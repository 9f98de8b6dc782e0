/* faults.h - the demo app's faults, declared once: each switches one
 * classic memory mistake on in an endpoint. A fault's value is a rate:
 * the share of requests that make the mistake (0 = off, the default,
 * 1 = every request; true/false = 1/0). Registered with the observer's
 * flags (observe/flags.h) at set-up. */
#ifndef SRV_FAULTS_H
#define SRV_FAULTS_H

#include <stdbool.h>

/* X(id, name, description, mistake) */
#define SRV_FAULT_MAP(X)                                                     \
  X(hello_leak_response, "hello.leak_response",                             \
    "GET /hello hands MHD a copy of its greeting and never frees its own "   \
    "buffer: the greeting's bytes stay live at site hello.response",         \
    "forgetting to free: the response buffer")                              \
  X(hello_off_by_one, "hello.off_by_one",                                   \
    "GET /hello copies the name into malloc(strlen(name)): the terminating " \
    "NUL lands in the guard after the block, caught as an overflow at "      \
    "site hello.name when it is freed",                                      \
    "not allocating enough: strlen without + 1")                            \
  X(hello_free_stack, "hello.free_stack",                                   \
    "GET /hello formats short greetings in a stack buffer and frees it as "  \
    "if it came from malloc: caught as an invalid free at hello.free",       \
    "invalid free: a stack address")                                        \
  X(hello_stack_return, "hello.stack_return",                               \
    "GET /hello has a helper format the greeting in its own stack buffer "   \
    "and return a pointer to it; another call then uses that stack, and "    \
    "the answer shows its bytes (#) instead of the greeting. The heap "      \
    "catches none of it: the buffer never came from the heap, the stack "    \
    "stays mapped and readable, and nothing was freed, only reused",         \
    "memory that must outlive a function placed on its stack")              \
  X(echo_leak_tree, "echo.leak_tree",                                       \
    "/echo never deletes the cJSON tree it parsed: every node and string "   \
    "of the document stays live at site echo.tree",                          \
    "forgetting to free: a whole cJSON tree per request")                   \
  X(echo_leak_on_error, "echo.leak_on_error",                               \
    "POST /echo with invalid JSON returns 400 without freeing its copy of "  \
    "the body (site echo.body); valid requests do not leak",                 \
    "forgetting to free, only on the error path (bad JSON)")                \
  X(echo_free_interior, "echo.free_interior",                               \
    "/echo frees its parse cursor (body + 1) instead of the body copy: "     \
    "caught as an invalid free, and the copy leaks at site echo.body",       \
    "invalid free: an interior pointer")                                    \
  X(session_unbounded_cache, "session.unbounded_cache",                     \
    "POST /session skips the LRU eviction of the session cache: entries "    \
    "pile up at site session.entry, still reachable, so a leak checker "     \
    "sees no leak; turning it off evicts back to the bound",                 \
    "a logical leak: a cache that grows without bound")                     \
  X(session_deadlock, "session.deadlock",                                   \
    "POST /session holds the session cache's lock and calls the function "   \
    "that counts the sessions, which takes the lock again: the thread "      \
    "waits for itself forever, and every later POST /session waits behind " \
    "it. The heap sees nothing; the worker's heartbeat, dated from when "   \
    "the stuck handler began, goes stale, and the supervisor replaces the "  \
    "worker after --worker-timeout (a hung event)",                          \
    "a lock taken twice: a deadlock, which looks like a hung worker")        \
  X(blob_free_early, "blob.free_early",                                     \
    "GET /blob frees its buffer before sending it and then writes its "      \
    "trailer into it: the body shows the heap's free poison (0xDD) and the " \
    "late write is caught as a write after free (site blob.buffer)",         \
    "freeing before done: the response freed before it is sent")            \
  X(blob_double_free, "blob.double_free",                                   \
    "GET /blob frees its scratch buffer in the loop and again in the "       \
    "cleanup: the second free is caught as a double free (site "             \
    "blob.scratch)",                                                         \
    "freeing twice")                                                        \
  X(report_uninit, "report.uninit",                                         \
    "GET /report allocates its records with malloc instead of calloc: the "  \
    "hex dump shows the fill pattern a5 in the fields it never set",         \
    "forgetting to initialise: malloc instead of calloc")                   \
  X(report_grow_leak, "report.grow_leak",                                   \
    "GET /report grows its text buffer by malloc + copy and forgets the "    \
    "old block: every growth step leaks the previous buffer (site "          \
    "report.text)",                                                          \
    "forgetting to free: growth that loses the old block")

typedef enum srv_fault {
#define SRV__FAULT_ENUM(id, name, desc, mistake) SRV_FAULT_##id,
  SRV_FAULT_MAP(SRV__FAULT_ENUM)
#undef SRV__FAULT_ENUM
  SRV_FAULT_COUNT
} srv_fault_t;

/* Register every fault as a flag; SRV_E2BIG or SRV_EINVAL. */
int srv_faults_register(void);
/* A per-request draw against fault f's rate: whether this request makes
 * the mistake. */
bool srv_faults_hit(srv_fault_t f);

#endif /* SRV_FAULTS_H */

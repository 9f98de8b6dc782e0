/* lab/alloc.h - leaklab's instrumented heap.
 *
 * Every allocation records its call site (file, line, function, optional
 * name). The heap accounts for every byte by site and by request scope,
 * and catches double frees, invalid frees, overflows and writes after free
 * without taking the process down: the bad operation is skipped, counted
 * and reported to an event callback.
 *
 * Two backends share this API and its accounting: "lab" (the heap's own
 * segments carved from mmap, with per-thread caches and every detector on)
 * and "libc" (over malloc/free, for comparison; its detection is best
 * effort, see lab_init()).
 *
 * Optionally (lab_config_t.stack_depth) every allocation also records its
 * call stack, deduplicated into a table of stacks with the same counters
 * as the sites (lab_stack_stats).
 *
 * The library knows nothing about HTTP. It depends on libc and, for call
 * stacks, elfutils' libdw (to read unwind tables) and libunwind.
 */
#ifndef LAB_ALLOC_H
#define LAB_ALLOC_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors: 0 is success, named negative codes, errno-compatible. ---- */

#define LAB_ERRNO_MAP(X)                                                     \
  X(ENOMEM, -ENOMEM, "out of memory")                                        \
  X(EINVAL, -EINVAL, "invalid argument")                                     \
  X(EBUSY, -EBUSY, "heap already initialised with other settings")          \
  X(ENOSPC, -ENOSPC, "too many call sites or scopes")                        \
  X(EOVERFLOW, -EOVERFLOW, "size computation overflows")

typedef enum lab_err {
  LAB_OK = 0,
#define LAB__ERR_ENUM(name, value, msg) LAB_##name = (value),
  LAB_ERRNO_MAP(LAB__ERR_ENUM)
#undef LAB__ERR_ENUM
} lab_err_t;

/* Human-readable message for a lab_err_t (or "unknown error"). */
const char *lab_strerror(int err);

/* ---- What the heap can catch. ---- */

#define LAB_FAULT_MAP(X)                                                     \
  X(double_free, "double free: the block was already freed")               \
  X(invalid_free, "invalid free: not a pointer this heap returned")        \
  X(overflow, "overflow: guard bytes around the block were overwritten")   \
  X(use_after_free, "use after free: a freed block was modified or reallocated")

typedef enum lab_fault {
#define LAB__FAULT_ENUM(name, desc) LAB_FAULT_##name,
  LAB_FAULT_MAP(LAB__FAULT_ENUM)
#undef LAB__FAULT_ENUM
  LAB_FAULT_COUNT
} lab_fault_t;

/* Short name of a fault kind ("double_free", ...), or "unknown". */
const char *lab_fault_name(lab_fault_t kind);
/* One-sentence description of a fault kind. */
const char *lab_fault_desc(lab_fault_t kind);

/* Fill patterns: fresh blocks from lab_malloc (not calloc) hold
 * LAB_FILL_ALLOC and freed blocks in quarantine hold LAB_FILL_FREE, in
 * their first lab_config_t.fill_limit bytes. */
#define LAB_FILL_ALLOC 0xA5
#define LAB_FILL_FREE 0xDD
/* fill_limit by default: the block's bytes that share its header's 64-byte
 * cache line when the slot starts one, so the patterns cost no extra line. */
#define LAB_FILL_DEFAULT 48
/* fill_limit for every byte of every block: thorough, but every free and
 * reuse then touches the whole block. */
#define LAB_FILL_WHOLE SIZE_MAX

/* ---- Call sites. ---- */

/* A place in the source that allocates or frees. One static instance per
 * call site, made by the LAB_SITE() macro; registered on first use. */
typedef struct lab_site {
  const char *file;   /* __FILE__ */
  const char *func;   /* __func__ */
  const char *name;   /* optional label, e.g. "session-cache", or NULL */
  int line;           /* __LINE__ */
  uint32_t id;        /* assigned on first use; 0 until then (internal) */
} lab_site_t;

/* A pointer to this call site's static lab_site_t, optionally named. */
#define LAB_SITE(name_)                                                      \
  (__extension__({                                                           \
    static lab_site_t lab__site_ = {__FILE__, __func__, (name_), __LINE__,   \
                                    0};                                      \
    &lab__site_;                                                             \
  }))

/* ---- Configuration and life cycle. ---- */

typedef enum lab_backend {
  LAB_BACKEND_LAB = 0, /* the instrumented heap (default) */
  LAB_BACKEND_LIBC = 1 /* malloc/free with the same accounting */
} lab_backend_t;

/* How call stacks are walked (lab_config_t.unwind). */
typedef enum lab_unwind {
  LAB_UNWIND_TABLES = 0,   /* the unwind tables (.eh_frame), read once per
                              return address and cached: right through code
                              without frame pointers (default) */
  LAB_UNWIND_FP = 1,       /* the frame-pointer chain: cheaper, but a frame
                              built without one hides its callers */
  LAB_UNWIND_LIBUNWIND = 2 /* libunwind's unw_backtrace: the same frames as
                              LAB_UNWIND_TABLES, slower; for comparison */
} lab_unwind_t;

#define LAB_STACK_DEPTH_DEFAULT 16 /* frames a stack keeps, by default */
#define LAB_STACK_DEPTH_MAX 64     /* the most lab_config_t.stack_depth takes */

typedef struct lab_config {
  lab_backend_t backend;     /* which heap serves allocations */
  size_t quarantine_bytes;   /* per thread; 0 = default (1 MiB) */
  size_t quarantine_blocks;  /* per thread, rounded up to a power of two;
                                0 = default (512) */
  size_t fill_limit;         /* bytes at the start of each block that are
                                pattern-filled, poisoned on free and checked
                                in quarantine; 0 = LAB_FILL_DEFAULT (48);
                                LAB_FILL_WHOLE: every byte */
  unsigned stack_depth;      /* call-stack frames recorded per allocation,
                                innermost first, up to LAB_STACK_DEPTH_MAX;
                                0: none, blocks are known by their site */
  lab_unwind_t unwind;       /* how stacks are walked */
} lab_config_t;

/* Choose the backend and limits before the first allocation. Optional: the
 * first allocation initialises with defaults. Returns LAB_EBUSY if the heap
 * already runs with a different backend, LAB_EINVAL on a bad config. The
 * libc backend detects bad frees only from the block header (best effort:
 * it reads memory libc may have reused). */
int lab_init(const lab_config_t *cfg);

/* The backend in use, as "lab" or "libc". */
const char *lab_backend_name(void);

/* Parse "lab" or "libc"; returns LAB_EINVAL for anything else. */
int lab_backend_parse(const char *s, lab_backend_t *out);

/* ---- Allocation: the never-NULL family (calls the OOM handler). ---- */

#define lab_malloc(n) lab_malloc_at((n), LAB_SITE(NULL))
#define lab_calloc(c, n) lab_calloc_at((c), (n), LAB_SITE(NULL))
#define lab_realloc(p, n) lab_realloc_at((p), (n), LAB_SITE(NULL))
#define lab_strdup(s) lab_strdup_at((s), LAB_SITE(NULL))
#define lab_free(p) lab_free_at((p), LAB_SITE(NULL))
/* Named variants: the name labels the site in reports. */
#define lab_malloc_named(n, name) lab_malloc_at((n), LAB_SITE(name))
#define lab_calloc_named(c, n, name) lab_calloc_at((c), (n), LAB_SITE(name))
#define lab_strdup_named(s, name) lab_strdup_at((s), LAB_SITE(name))

/* ---- The try family: returns NULL on failure, never calls the handler. ---- */

#define lab_try_malloc(n) lab_try_malloc_at((n), LAB_SITE(NULL))
#define lab_try_calloc(c, n) lab_try_calloc_at((c), (n), LAB_SITE(NULL))
#define lab_try_realloc(p, n) lab_try_realloc_at((p), (n), LAB_SITE(NULL))
#define lab_try_strdup(s) lab_try_strdup_at((s), LAB_SITE(NULL))

/* Allocate n bytes (n == 0 gives a unique minimal block), filled with
 * LAB_FILL_ALLOC; never NULL: calls the OOM handler on failure. */
void *lab_malloc_at(size_t n, const lab_site_t *site);
/* Allocate count*size zeroed bytes; the product is overflow-checked. */
void *lab_calloc_at(size_t count, size_t size, const lab_site_t *site);
/* C's realloc: p == NULL is malloc; n == 0 frees p and returns NULL; the
 * lab backend always moves the block so stale pointers are caught. A p
 * already freed is reported as a use after free and NULL returned. */
void *lab_realloc_at(void *p, size_t n, const lab_site_t *site);
/* Copy of a NUL-terminated string. */
char *lab_strdup_at(const char *s, const lab_site_t *site);
/* Free p (NULL is a no-op). A bad pointer is reported, not freed. */
void lab_free_at(void *p, const lab_site_t *site);

/* As above, but return NULL (errno ENOMEM or EOVERFLOW) on failure. */
void *lab_try_malloc_at(size_t n, const lab_site_t *site);
/* Zeroed, overflow-checked; NULL on failure. */
void *lab_try_calloc_at(size_t count, size_t size, const lab_site_t *site);
/* NULL on failure, and p is left untouched and still owned by the caller. */
void *lab_try_realloc_at(void *p, size_t n, const lab_site_t *site);
/* NULL on failure. */
char *lab_try_strdup_at(const char *s, const lab_site_t *site);

/* Requested size of a live block from this heap, or 0 if p is not one. */
size_t lab_usable_size(const void *p);

/* ---- A memory limit: running out of memory, on purpose. ---- */

/* Cap the memory the heap holds at `bytes` (the lab backend's mapped
 * bytes, the libc backend's live bytes): an allocation that would pass it
 * fails as out of memory, as when the machine runs out (0: no cap, the
 * default). It can be changed at any time, by any thread. */
void lab_set_limit(uint64_t bytes);
/* The cap (0: none). */
uint64_t lab_limit(void);
/* Let the calling thread's allocations go `bytes` past the cap (0: not
 * at all); returns the previous reserve. For code that must go on working
 * while the heap is exhausted, such as the code that reports it. */
uint64_t lab_set_reserve(uint64_t bytes);
/* Called on the allocating thread whenever an allocation is refused for
 * want of memory, before the never-NULL family's OOM handler. Memory is
 * short: it should not allocate. */
typedef void (*lab_refusal_fn)(size_t size, const lab_site_t *site, void *ctx);
/* Subscribe one refusal callback (NULL unsubscribes). */
void lab_set_refusal_callback(lab_refusal_fn fn, void *ctx);

/* Called when the never-NULL family cannot allocate `size` bytes. If it
 * returns, the allocation is retried once, then the process aborts. */
typedef void (*lab_oom_handler_t)(size_t size);
/* Replace the OOM handler (NULL restores the default: print and abort). */
void lab_set_oom_handler(lab_oom_handler_t fn);

/* ---- Detection events. ---- */

typedef struct lab_event {
  lab_fault_t kind;              /* what was caught */
  const lab_site_t *alloc_site;  /* where the block was allocated, or NULL */
  const lab_site_t *site;        /* where the bad operation was seen */
  const lab_site_t *free_site;   /* where the block was freed, or NULL */
  uint32_t alloc_stack;          /* the block's stack id (lab_stack_frames),
                                    or 0 */
  const void *ptr;               /* the pointer involved */
  size_t size;                   /* requested size of the block, or 0 */
  long offset;                   /* overflow/use after free: first bad
                                    byte relative to the block start (0
                                    for a realloc of a freed block) */
} lab_event_t;

/* Called synchronously on the detecting thread; it must not free
 * ev->ptr. It may allocate. */
typedef void (*lab_event_fn)(const lab_event_t *ev, void *ctx);
/* Subscribe one callback to detection events (NULL unsubscribes). */
void lab_set_event_callback(lab_event_fn fn, void *ctx);

/* Check every block the heap can see safely: the guards of live blocks in
 * the calling thread's pages, the exited threads' pages and all large
 * blocks; the poison of the blocks in the calling thread's quarantine and
 * the exited threads' quarantines, whichever thread allocated them. A
 * block in another running thread's quarantine is checked by that thread
 * when it leaves the quarantine, and other threads' live blocks when they
 * are freed. Reports each finding as an event and returns how many were
 * found; a correct program gets 0, whatever its other threads do. */
size_t lab_check(void);

/* ---- Accounting. ---- */

/* Every heap-wide statistic, declared once: X(name, kind, metric, help).
 * kind is gauge or counter; metric is its name in metrics (a counter's
 * exporter adds _total). */
#define LAB_STAT_FIELDS(X)                                                   \
  X(live_bytes, gauge, live_bytes, "bytes requested and not yet freed")     \
  X(live_blocks, gauge, live_blocks, "blocks allocated and not yet freed")  \
  X(peak_live_bytes, gauge, peak_live_bytes, "highest live_bytes seen")     \
  X(mapped_bytes, gauge, mapped_bytes,                                       \
    "bytes taken from the OS and not given back")                           \
  X(overhead_bytes, gauge, overhead_bytes,                                   \
    "metadata: block headers, guards, heap structures")                     \
  X(total_allocs, counter, allocs, "allocations since start")               \
  X(total_frees, counter, frees, "frees since start")                       \
  X(reclaimed_bytes, counter, reclaimed_bytes,                               \
    "bytes freed by closing scopes with reclaim")                           \
  X(reclaimed_blocks, counter, reclaimed_blocks,                             \
    "blocks freed by closing scopes with reclaim")                          \
  X(quarantine_bytes, gauge, quarantine_bytes,                               \
    "freed bytes held in quarantine")                                       \
  X(os_maps, counter, os_maps, "mappings requested from the OS since start") \
  X(refusals, counter, refusals,                                             \
    "allocations refused for want of memory (lab_set_limit's cap or the OS)") \
  X(heaps, gauge, heaps, "thread heaps made; a new thread reuses an exited one's")

typedef struct lab_stats {
#define LAB__STAT_FIELD(name, kind, metric, help) uint64_t name;
  LAB_STAT_FIELDS(LAB__STAT_FIELD)
#undef LAB__STAT_FIELD
  uint64_t errors[LAB_FAULT_COUNT]; /* caught faults by kind */
} lab_stats_t;

/* Heap-wide snapshot; cost depends on threads and sites, not on blocks. */
void lab_stats(lab_stats_t *out);
/* Its live_bytes alone: a sum over the thread heaps, for frequent checks. */
uint64_t lab_live_bytes(void);

/* Per call site: X(name, kind, metric, help), as LAB_STAT_FIELDS. */
#define LAB_SITE_STAT_FIELDS(X)                                              \
  X(live_bytes, gauge, live_bytes, "bytes allocated here and still live")   \
  X(live_blocks, gauge, live_blocks, "blocks allocated here and still live") \
  X(total_allocs, counter, allocs, "allocations made here since start")     \
  X(total_bytes, counter, allocated_bytes, "bytes allocated here since start")

typedef struct lab_site_stats {
  const lab_site_t *site; /* the call site */
#define LAB__STAT_FIELD(name, kind, metric, help) uint64_t name;
  LAB_SITE_STAT_FIELDS(LAB__STAT_FIELD)
#undef LAB__STAT_FIELD
  uint64_t errors[LAB_FAULT_COUNT]; /* faults charged to this site */
} lab_site_stats_t;

/* Fill out[0..max) with every registered site's counters (in registration
 * order) and return the number of sites registered, which may exceed max. */
size_t lab_site_stats(lab_site_stats_t *out, size_t max);

/* Register a site now (normally done on first use); returns its id (>0)
 * or LAB_ENOSPC when the site table is full. */
int lab_site_register(lab_site_t *site);

/* Per call stack: a site and the stack that reached it. With stacks off
 * (or for blocks whose stack could not be kept) a site stands alone, as a
 * stack of depth 0. Same fields as lab_site_stats_t. */
typedef struct lab_stack_stats {
  uint32_t id;             /* stack id (>0), fixed for the process's life */
  const lab_site_t *site;  /* the site the stack ends at, or NULL */
  const uintptr_t *frames; /* return addresses, innermost (the caller of
                              the heap) first; valid for the process's life */
  uint32_t depth;          /* entries in frames (0: the site alone) */
#define LAB__STAT_FIELD(name, kind, metric, help) uint64_t name;
  LAB_SITE_STAT_FIELDS(LAB__STAT_FIELD)
#undef LAB__STAT_FIELD
  uint64_t errors[LAB_FAULT_COUNT]; /* faults charged to this stack */
} lab_stack_stats_t;

/* Fill out[0..max) with the counters of every site and stack that has
 * ever allocated (sites alone first, then stacks in the order first seen)
 * and return how many there are, which may exceed max. */
size_t lab_stack_stats(lab_stack_stats_t *out, size_t max);
/* The same in pieces, for a reader whose memory must not grow with the
 * table: fill out[0..max) with the stacks after *cursor (0: from the
 * first), in the same order, move *cursor past the last one filled, and
 * return how many were filled (0: no more). */
size_t lab_stack_stats_next(uint32_t *cursor, lab_stack_stats_t *out, size_t max);
/* The frames of stack `id` (NULL and *depth 0 for a site alone or an
 * unknown id). */
const uintptr_t *lab_stack_frames(uint32_t id, uint32_t *depth);
/* Stacks charged to their site alone because the stack table was full. */
uint64_t lab_stack_dropped(void);
/* Frames recorded per allocation, as lab_init was given (0: stacks off). */
uint32_t lab_stack_depth(void);

/* ---- Request scopes. ---- */

typedef struct lab_scope lab_scope_t;

/* Open a scope on the calling thread: every allocation this thread makes
 * until it is closed is tagged with it. Scopes do not nest: opening one
 * while another is current replaces it as current. NULL on failure. */
lab_scope_t *lab_scope_open(const char *label);

/* The calling thread's current scope, or NULL. */
lab_scope_t *lab_scope_current(void);

/* Make s the calling thread's current scope (NULL: none). */
void lab_scope_enter(lab_scope_t *s);

/* Live blocks and bytes still tagged with s. */
void lab_scope_usage(const lab_scope_t *s, size_t *blocks, size_t *bytes);

/* One site's share of what a scope left behind. */
typedef struct lab_leak {
  const lab_site_t *site; /* where the blocks were allocated */
  size_t blocks;          /* how many are still live */
  size_t bytes;           /* their requested bytes */
} lab_leak_t;

#define LAB_SCOPE_REPORT_SITES 8
/* What a scope still held when it closed. */
typedef struct lab_scope_report {
  size_t blocks;  /* all live blocks of the scope */
  size_t bytes;   /* all their bytes */
  size_t nsites;  /* entries used in sites[] */
  lab_leak_t sites[LAB_SCOPE_REPORT_SITES]; /* largest sites first */
} lab_scope_report_t;

#define LAB_SCOPE_RECLAIM 1u /* free what the scope still holds */

/* Close s (it is no longer current anywhere after this). Fills *report (if
 * not NULL) with what was still live; with LAB_SCOPE_RECLAIM frees it, and
 * otherwise leaves it live and untagged. Once the close has taken the
 * blocks (lab_scope_usage then says 0), another thread's free of one of
 * them is reported as a double free and skipped; each is freed once. */
void lab_scope_close(lab_scope_t *s, unsigned flags,
                     lab_scope_report_t *report);

/* Move a live block out of its scope so it outlives the request (e.g. a
 * cache entry). Returns LAB_EINVAL if p is not a live block of this heap
 * (or its scope is closing and has taken it to reclaim). */
int lab_detach(void *p);

/* ---- Test hooks. ---- */

/* Make the n-th request to the OS from now on fail (1 = the next one);
 * 0 disables. For allocation-failure tests. */
void lab_debug_fail_os_at(uint64_t n);
/* Requests to the OS failed by injection since start. */
uint64_t lab_debug_os_failures(void);
/* Flush the calling thread's quarantine (checking each block), so freed
 * memory returns to its pages now. */
void lab_flush_quarantine(void);
/* Return the calling thread's empty pages and cached segments to the OS. */
void lab_trim(void);

/* ---- Plain-signature hooks, e.g. for cJSON_InitHooks (see lab/cjson.h). */

/* malloc-compatible; charged to the site named "cjson" unless `site` is
 * set with lab_hook_site(). */
void *lab_hook_malloc(size_t n);
/* free-compatible. */
void lab_hook_free(void *p);
/* Charge the calling thread's lab_hook_malloc() calls to `site` (NULL:
 * back to the default "cjson" site); returns the previous one. */
const lab_site_t *lab_hook_site(const lab_site_t *site);

#ifdef __cplusplus
}
#endif
#endif /* LAB_ALLOC_H */

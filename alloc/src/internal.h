/* internal.h - what the heap's modules share; nothing here is public.
 *
 * Every block, in both backends, starts with a 16-byte header and ends with
 * an 8-byte rear guard right after the requested bytes:
 *
 *   [size:4][site:2][scope:2][slot:4][canary:4][user bytes ...][guard:8]
 *
 * The user pointer is 16-byte aligned. 24 bytes of metadata per block;
 * a block in a request scope costs 8 more in the scope's block array.
 *
 * Who calls whom. os.c and site.c call no other module. heap.c, the
 * public API, calls the backends (segment.c, libc_backend.c) and scope.c.
 * Two kinds of call go back to heap.c, and both circles are inherent:
 * - scope.c <-> heap.c: a scope is a set of live blocks, so freeing a
 *   block must take it out of its scope (heap.c calls lab__scope_remove)
 *   and closing a scope with reclaim must free its blocks through the one
 *   free path (scope.c calls lab__free_hdr, lab__validate; and it keeps
 *   a spare scope in the thread heap, lab__heap_get). Cutting it would
 *   only move those calls behind a table of function pointers.
 * - backends -> heap.c: the detectors sit where the block layout is known
 *   (segment.c, libc_backend.c), but a finding is counted per thread heap
 *   and site and handed to the subscriber, which heap.c owns: they call
 *   lab__report (and use lab__cfg, lab__peak_note, lab__fill_check).
 *   Returning findings up instead would thread them through every
 *   backend call, the hot ones included.
 */
#ifndef LAB_INTERNAL_H
#define LAB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "lab/alloc.h"

#define LAB__LIKELY(x) __builtin_expect(!!(x), 1)
#define LAB__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- Block header ---- */

#define LAB__CANARY_LIVE 0x4C41424Cu  /* handed out */
#define LAB__CANARY_QUAR 0xDEADF4EEu  /* freed, held in quarantine */
#define LAB__CANARY_FREE 0xF4EEF4EEu  /* freed, back on a free list */
#define LAB__GUARD_BYTE 0xFB
#define LAB__GUARD_SIZE 8
#define LAB__HDR_SIZE 16
#define LAB__BLOCK_OVERHEAD (LAB__HDR_SIZE + LAB__GUARD_SIZE)
#define LAB__SIZE_LARGE 0xFFFFFFFFu /* size field of blocks >= 4 GiB */

typedef struct lab__hdr {
  uint32_t size;            /* requested bytes (LAB__SIZE_LARGE: see large) */
  uint16_t site;            /* origin: the allocation's site id (0:
                               unknown), or its stack id (trace.c) */
  _Atomic uint16_t scope;   /* scope id, 0 when in none,
                               LAB__SCOPE_RECLAIMING once its scope's
                               close took it to free */
  uint32_t slot;            /* index in the scope's block array; once freed,
                               the id of the freeing site */
  _Atomic uint32_t canary;  /* LAB__CANARY_*; only through lab__canary* */
} lab__hdr_t;

_Static_assert(sizeof(lab__hdr_t) == LAB__HDR_SIZE, "header is 16 bytes");

/* Scope tag of a block its closing scope has taken to reclaim: whoever
 * frees it after that moment lost the race to the reclaim. Never a
 * scope id. */
#define LAB__SCOPE_RECLAIMING UINT16_MAX

/* The canary is read by threads other than the one that writes it: a
 * free racing a reclaim, another thread's stale free, lab_check(). So it
 * is atomic: relaxed loads where only its value matters (the same
 * instruction as a plain load), release stores when a block is freed, and
 * an acquire load before trusting what the freer wrote (slot: the free
 * site). */
static inline uint32_t lab__canary(const lab__hdr_t *b) {
  return atomic_load_explicit(&b->canary, memory_order_relaxed);
}
static inline uint32_t lab__canary_acquire(const lab__hdr_t *b) {
  return atomic_load_explicit(&b->canary, memory_order_acquire);
}
static inline void lab__canary_set(lab__hdr_t *b, uint32_t c) {
  atomic_store_explicit(&b->canary, c, memory_order_release);
}

static inline lab__hdr_t *lab__hdr_of(const void *user) {
  return (lab__hdr_t *)((uintptr_t)user - LAB__HDR_SIZE);
}
static inline void *lab__user_of(lab__hdr_t *h) {
  return (char *)h + LAB__HDR_SIZE;
}

/* Offset of the first byte in p[0..n) that is not `fill`, or -1. */
long lab__fill_check(const void *p, size_t n, unsigned char fill);
/* A byte repeated in every byte of a word. */
#define LAB__WORD_OF(byte) (0x0101010101010101ull * (uint8_t)(byte))

/* Write the rear guard after n user bytes. */
static inline void lab__guard_set(void *user, size_t n) {
  memset((char *)user + n, LAB__GUARD_BYTE, LAB__GUARD_SIZE);
}
/* Offset of the first damaged guard byte past the block, or -1. */
static inline long lab__guard_check(const void *user, size_t n) {
  uint64_t got;
  memcpy(&got, (const char *)user + n, sizeof got);
  if (LAB__LIKELY(got == LAB__WORD_OF(LAB__GUARD_BYTE))) return -1;
  return lab__fill_check((const char *)user + n, LAB__GUARD_SIZE,
                         LAB__GUARD_BYTE);
}

/* Bounded fills (lab_config_t.fill_limit) of 16 to LAB__FILL_SHORT bytes
 * are written and checked inline, in overlapping 16-byte vectors. */
#define LAB__FILL_SHORT 64
typedef uint8_t lab__v16_t __attribute__((vector_size(16)));

static inline lab__v16_t lab__v16_load(const void *p) {
  lab__v16_t v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void lab__v16_store(void *p, lab__v16_t v) {
  memcpy(p, &v, sizeof v);
}

/* memset(p, fill, n). */
static inline void lab__fill(void *p, size_t n, unsigned char fill) {
  if (n < 16 || n > LAB__FILL_SHORT) {
    memset(p, fill, n);
    return;
  }
  lab__v16_t v = (lab__v16_t){0} + fill;
  char *b = p;
  lab__v16_store(b, v);
  lab__v16_store(b + n - 16, v);
  if (n > 32) {
    lab__v16_store(b + 16, v);
    lab__v16_store(b + n - 32, v);
  }
}

/* If p[0..n) all holds `was`, fill it with `now` and return -1; otherwise
 * leave it as it is and return the offset of the first other byte. */
static inline long lab__fill_swap(void *p, size_t n, unsigned char was,
                                  unsigned char now) {
  if (n >= 16 && n <= LAB__FILL_SHORT) {
    char *b = p;
    lab__v16_t w = (lab__v16_t){0} + was;
    lab__v16_t x0 = lab__v16_load(b), x1 = lab__v16_load(b + n - 16);
    lab__v16_t x2 = w, x3 = w;
    if (n > 32) {
      x2 = lab__v16_load(b + 16);
      x3 = lab__v16_load(b + n - 32);
    }
    lab__v16_t d = (x0 ^ w) | (x1 ^ w) | (x2 ^ w) | (x3 ^ w);
    uint64_t lo, hi;
    memcpy(&lo, &d, sizeof lo);
    memcpy(&hi, (char *)&d + sizeof lo, sizeof hi);
    if (LAB__LIKELY(!(lo | hi))) {
      lab__fill(p, n, now);
      return -1;
    }
  }
  long bad = lab__fill_check(p, n, was);
  if (bad < 0) memset(p, now, n);
  return bad;
}

/* Relaxed single-writer counter bump, race-free: readers see the old or
 * the new value. GCC does not fold a relaxed load and store into one
 * instruction, so on x86-64 it is one add to memory: no lock prefix (one
 * writer), and an aligned 8-byte store is atomic there. TSan sees the
 * portable form. */
#if defined(__SANITIZE_THREAD__)
#define LAB__BUMP_ASM 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LAB__BUMP_ASM 0
#endif
#endif
#if !defined(LAB__BUMP_ASM) && defined(__x86_64__)
#define LAB__BUMP_ASM 1
#endif
#ifndef LAB__BUMP_ASM
#define LAB__BUMP_ASM 0
#endif
#if LAB__BUMP_ASM
#define LAB__BUMP(ctr, by)                                                   \
  __asm__("addq %1, %0" : "+m"(ctr) : "er"((uint64_t)(by)) : "cc")
#else
#define LAB__BUMP(ctr, by)                                                   \
  atomic_store_explicit(&(ctr),                                              \
                        atomic_load_explicit(&(ctr), memory_order_relaxed) + \
                            (by),                                            \
                        memory_order_relaxed)
#endif
#define LAB__READ(ctr) atomic_load_explicit(&(ctr), memory_order_relaxed)

/* What a pointer is handed to the heap for. It decides what a block that
 * is already freed is reported as: freeing it again is a double free;
 * any other use of it (realloc) is a use after free. */
typedef enum lab__use {
  LAB__USE_QUERY,   /* a question (lab_usable_size, lab_detach): no report */
  LAB__USE_FREE,    /* lab_free: a freed block is a double free */
  LAB__USE_REALLOC, /* lab_realloc: a freed block is a use after free */
} lab__use_t;

/* The fault a use of an already freed block is. */
static inline lab_fault_t lab__freed_fault(lab__use_t use) {
  return use == LAB__USE_FREE ? LAB_FAULT_double_free
                              : LAB_FAULT_use_after_free;
}

/* ---- os.c: the only file that talks to the kernel ---- */

/* Map n bytes of zeroed memory; NULL on failure (real or injected). */
void *lab__os_map(size_t n);
/* Map n bytes aligned to `align` (a power of two >= page size). */
void *lab__os_map_aligned(size_t n, size_t align);
/* Unmap what lab__os_map* returned. */
void lab__os_unmap(void *p, size_t n);
/* Give the pages of p[0..n) back to the OS; they read as zero later. */
void lab__os_release(void *p, size_t n);
/* The OS page size. */
size_t lab__os_page(void);
/* Reserve n bytes of address space that are committed only when touched
 * (for the segment map); not subject to failure injection. */
void *lab__os_reserve(size_t n);

/* ---- site.c: call sites and their per-thread counters ---- */

#define LAB__MAX_SITES 4096

typedef struct lab__site_ctr {
  _Atomic uint64_t allocs;      /* allocations charged to the site */
  _Atomic uint64_t alloc_bytes; /* their bytes */
  _Atomic uint64_t frees;       /* frees of blocks allocated at the site */
  _Atomic uint64_t free_bytes;  /* their bytes */
  _Atomic uint64_t errors[LAB_FAULT_COUNT]; /* faults charged to the site */
} lab__site_ctr_t;

/* Register a site that has no id yet; its id, or 0 if the table is full. */
uint16_t lab__site_id_new(const lab_site_t *site);
/* Id of a site, registering it on first use; 0 for NULL or a full table. */
static inline uint16_t lab__site_id(const lab_site_t *site) {
  if (LAB__UNLIKELY(!site)) return 0;
  uint32_t id = __atomic_load_n(&site->id, __ATOMIC_ACQUIRE);
  return LAB__LIKELY(id) ? (uint16_t)id : lab__site_id_new(site);
}
/* The site with this id, or NULL. */
const lab_site_t *lab__site_at(uint16_t id);
/* Number of registered sites plus one (ids run 1..n-1). */
uint32_t lab__site_limit(void);

/* ---- trace.c: call stacks ---- */

/* Origin ids (lab__hdr_t.site): sites below LAB__MAX_SITES, stacks from
 * there up to LAB__MAX_ORIGINS - 1. */
#define LAB__MAX_ORIGINS 65536

/* ---- unwind.c: stack walks ---- */

/* Return addresses of the calling thread's stack, innermost first, from
 * the caller of this function, by the unwind tables; how many. The walk
 * ends max frames after the first that is `from`, or at skip + max if
 * none of the first skip is. */
int lab__unwind_tables(uintptr_t *out, int max, uintptr_t from, int skip);
/* The same by the frame-pointer chain. */
int lab__unwind_fp(uintptr_t *out, int max, uintptr_t from, int skip);

/* Set up the unwinder (lab_init). */
void lab__trace_init(void);
/* The origin of an allocation at `site` whose public entry point returns
 * to `ra`: its stack's id, made on first sight, or `site` if the stack
 * cannot be kept. Only with lab__cfg.stack_depth > 0. */
uint16_t lab__trace_origin(uint16_t site, const void *ra);
/* The site of a stack id. */
uint16_t lab__origin_site_slow(uint16_t origin);
/* The site an origin belongs to. */
static inline uint16_t lab__origin_site(uint16_t origin) {
  return origin < LAB__MAX_SITES ? origin : lab__origin_site_slow(origin);
}
/* One past the highest stack id in use (LAB__MAX_SITES when none). */
uint32_t lab__trace_limit(void);
/* A stack's frames and depth (NULL, 0 for a site alone). */
const uintptr_t *lab__trace_frames(uint16_t origin, uint32_t *depth);
/* Stacks charged to their site alone, the table being full. */
extern _Atomic uint64_t lab__trace_dropped;

/* ---- heap.c: per-thread heaps, shared by both backends ---- */

#define LAB__NCLS 47 /* size classes of the lab backend */

/* Counters each thread heap keeps; single writer, summed over heaps.
 * Counts of allocations and frees are kept per site only (lab__site_ctr_t)
 * and summed by lab_stats, so each operation bumps as few words as it
 * can. */
typedef struct lab__heap_ctr {
  _Atomic uint64_t net;       /* bytes allocated minus bytes freed here
                                 (two's complement: a heap that frees
                                 other threads' blocks goes below 0) */
  _Atomic uint64_t peak_net;  /* highest net seen */
  _Atomic uint64_t reclaimed_bytes, reclaimed_blocks;
  _Atomic uint64_t quarantine_bytes;
  _Atomic uint64_t errors[LAB_FAULT_COUNT];
} lab__heap_ctr_t;

struct lab__page;
struct lab__segment;

/* One thread's heap. Never freed: a heap whose thread exits is adopted by
 * the next new thread. */
typedef struct lab__heap {
  lab__heap_ctr_t ctr;           /* this heap's counters */
  lab__site_ctr_t *sites;        /* per-origin counters (site or stack),
                                    LAB__MAX_ORIGINS, committed as used */
  struct lab__heap *next_all;    /* global list of every heap */
  struct lab__heap *next_free;   /* list of abandoned heaps */
  /* lab backend */
  struct lab__page *cur[LAB__NCLS];   /* pages allocations come from */
  struct lab__page *avail[LAB__NCLS]; /* other pages with free slots */
  struct lab__page *spare[LAB__NCLS]; /* empty pages kept per class */
  uint32_t nspare[LAB__NCLS];    /* how many */
  struct lab__segment *segs;     /* segments this heap owns */
  _Atomic(lab__hdr_t *) remote;  /* blocks freed back by other threads */
  lab__hdr_t **q;                /* quarantine ring */
  uint32_t qcap, qhead, qn;      /* ring capacity, oldest, count */
  uint64_t qmax;                 /* byte limit (ctr.quarantine_bytes: held) */
  struct lab_scope *spare_scope; /* a closed scope kept for the next open */
} lab__heap_t;

/* The calling thread's heap, made or adopted on first use; NULL on OOM. */
lab__heap_t *lab__heap_get(void);

/* Report a caught fault: count it for the heap and the charged origin,
 * then call the subscriber. alloc_site is the block's origin, free_site a
 * site id; either may be 0 (unknown). */
void lab__report(lab_fault_t kind, uint16_t alloc_site, uint16_t free_site,
                 size_t size, const void *ptr, const lab_site_t *site,
                 long offset);

/* Raise the global peak to the current heap-wide live bytes. */
void lab__peak_note(void);

/* Settings from lab_init(), defaults filled in. */
extern lab_config_t lab__cfg;
/* Bytes at the start of an n-byte block that are filled, poisoned and
 * checked. */
static inline size_t lab__fill_span(size_t n) {
  return n < lab__cfg.fill_limit ? n : lab__cfg.fill_limit;
}

/* Global atomics kept outside per-thread heaps. */
extern _Atomic uint64_t lab__mapped_bytes;  /* live OS mappings, bytes */
extern _Atomic uint64_t lab__meta_bytes;    /* heap structures, bytes */
extern _Atomic uint64_t lab__os_maps;       /* mapping requests */
extern int lab__vg;                         /* running under memcheck */
extern _Atomic uint64_t lab__limit;         /* lab_set_limit's cap, 0: none */
extern __thread uint64_t lab__tls_reserve;  /* lab_set_reserve's, this thread */

/* Whether the heap may take `more` bytes without passing lab_set_limit's
 * cap (with this thread's reserve); one relaxed load when there is none. */
static inline bool lab__limit_allows(uint64_t more) {
  uint64_t cap = atomic_load_explicit(&lab__limit, memory_order_relaxed);
  if (LAB__LIKELY(!cap)) return true;
  return atomic_load_explicit(&lab__mapped_bytes, memory_order_relaxed) + more <=
         cap + lab__tls_reserve;
}

/* Count one request to the OS (or libc); true if it must fail. */
bool lab__os_inject(void);

/* ---- segment.c: the lab backend's segments, pages and large blocks ---- */

/* Largest request served from pages; bigger ones get a mapping. */
#define LAB__SEG_SMALL_MAX (131072 - LAB__BLOCK_OVERHEAD)

/* Set up global state (segment map); 0 or LAB_ENOMEM. */
int lab__seg_global_init(void);
/* A slot for n user bytes from the heap's pages or a large mapping, its
 * user bytes zeroed or pattern-filled; returns its header (unset), NULL
 * on OOM. */
lab__hdr_t *lab__seg_alloc(lab__heap_t *h, size_t n, bool zero);
/* The common allocation in one piece: a recycled slot for n <=
 * LAB__SEG_SMALL_MAX bytes from the current page of its class, its fill
 * done; NULL, having changed nothing, when that takes more (a fresh slot,
 * another page, a new one): then lab__seg_alloc. */
lab__hdr_t *lab__seg_alloc_fast(lab__heap_t *h, size_t n);
/* The common free in one piece: p is a live small block in no scope with
 * its guard intact, and the quarantine takes it by evicting at most its
 * oldest block, which is intact and goes back to a page of h that keeps
 * a block. Then every check and the whole free are done, free_site
 * recorded, and the header returned (to count the free); otherwise NULL,
 * having changed nothing: the caller takes the general path, which
 * reports what is wrong. Once p is found to be a live block, *valid is
 * set to its header (as lab__seg_validate returns it), so that path need
 * not validate it again. */
lab__hdr_t *lab__seg_free_fast(lab__heap_t *h, void *p, uint16_t free_site,
                              lab__hdr_t **valid);
/* Validate a pointer: its live header, or NULL (after reporting, unless
 * `use` is a query, the invalid pointer or the freed block). `site` is
 * where it was seen. */
lab__hdr_t *lab__seg_validate(const void *p, const lab_site_t *site,
                              lab__use_t use);
/* Free a validated block of `size` bytes: check the guard, poison it and
 * queue it in the heap's quarantine. */
void lab__seg_free(lab__heap_t *h, lab__hdr_t *b, size_t size);
/* Requested size of a validated block. */
size_t lab__seg_size(const lab__hdr_t *b);
/* Drain the heap's quarantine, checking every block. */
void lab__seg_flush(lab__heap_t *h);
/* Return the heap's spare empty pages to the OS. */
void lab__seg_trim(lab__heap_t *h);
/* Check the guards of the live blocks in the heap's pages and the poison
 * of the blocks in its quarantine, wherever they live; returns findings.
 * Only for the calling thread's heap or an abandoned one (under the heaps
 * lock): blocks in other threads' quarantines are theirs to check. */
size_t lab__seg_check(lab__heap_t *h);
/* Check every large block; returns findings. */
size_t lab__seg_check_large(void);

/* ---- libc_backend.c ---- */

/* malloc-backed block with room for header and guard; NULL on OOM. */
lab__hdr_t *lab__libc_alloc(size_t n, bool zero);
/* Validate a pointer (best effort, from its header); NULL after
 * reporting, as lab__seg_validate. */
lab__hdr_t *lab__libc_validate(const void *p, const lab_site_t *site,
                               lab__use_t use);
/* Free a validated block. */
void lab__libc_free(lab__hdr_t *h, size_t size);
/* Bytes libc has mapped (arena plus mmapped chunks). */
uint64_t lab__libc_mapped(void);

/* ---- scope.c ---- */

/* Make room in s for one more block; LAB_ENOMEM if it cannot grow. */
int lab__scope_reserve(lab_scope_t *s);
/* Tag a fresh block with scope s (room reserved first). */
void lab__scope_add(lab_scope_t *s, lab__hdr_t *h, size_t size);
/* Remove a live block from its scope, if it is in one, so the caller may
 * free or detach it. False if its scope's close has taken it to reclaim
 * (decided under the scope lock): the block is the reclaim's to free, and
 * the caller must leave it alone. */
bool lab__scope_remove(lab__hdr_t *h, size_t size);
/* Id of the site reclaimed blocks are freed at. */
uint16_t lab__scope_reclaim_site(void);
/* The calling thread's current scope. */
extern __thread lab_scope_t *lab__tls_scope;
/* Bytes the scope pool holds (for overhead). */
uint64_t lab__scope_meta_bytes(void);

/* The scope with this id, or NULL. */
lab_scope_t *lab__scope_at(uint16_t id);

/* Free a live block that is in no scope (any more): callers take it out
 * first with lab__scope_remove, scope reclaim by tagging it as reclaimed. */
void lab__free_hdr(lab__hdr_t *h, uint16_t free_site, bool reclaimed);
/* Validate p from either backend: live header or NULL. */
lab__hdr_t *lab__validate(const void *p, const lab_site_t *site,
                          lab__use_t use);
/* Requested size of a live header's block. */
size_t lab__size_of(const lab__hdr_t *h);

#endif /* LAB_INTERNAL_H */

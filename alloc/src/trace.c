/* trace.c - call stacks: capture at allocation and the stack table.
 *
 * A block's header keeps an origin id (lab__hdr_t.site). Ids below
 * LAB__MAX_SITES are sites themselves (stacks off, or a stack that could
 * not be kept); ids from LAB__MAX_SITES up name a distinct (site, stack)
 * pair of this table. Counters are kept per origin in each thread heap,
 * as they were per site, so a stack costs no more to count than a site.
 *
 * Capture. The default walks the stack by its unwind tables (unwind.c),
 * right through code built without frame pointers (libc, Debian's cJSON
 * and libmicrohttpd). LAB_UNWIND_FP follows the frame-pointer chain,
 * cheaper, but a frame without one hides its callers; LAB_UNWIND_LIBUNWIND
 * asks libunwind, for comparison (see BENCHMARKS.md).
 *
 * The table. Stacks are hashed with their site into an open-addressing
 * table of ids read without a lock; a new stack is added under a mutex,
 * its frames in an arena that is never freed, so a stack's frames stay
 * valid for the process's life. A full table charges new stacks to their
 * site alone (lab__trace_dropped counts them).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "internal.h"

#define LAB__TRACE_SLOTS (2u * LAB__MAX_ORIGINS) /* hash slots, power of 2 */
#define LAB__TRACE_ARENA ((size_t)1 << 20)      /* frames arena chunk */
#define LAB__TRACE_SKIP 8 /* heap frames at most above the capture */

typedef struct lab__trace {
  uint64_t hash;
  uint16_t site;
  uint16_t depth;
  uintptr_t frames[]; /* innermost first */
} lab__trace_t;

static _Atomic uint32_t lab__trace_slot[LAB__TRACE_SLOTS]; /* origin ids */
static lab__trace_t *_Atomic lab__trace_at_[LAB__MAX_ORIGINS];
static _Atomic uint32_t lab__trace_next = LAB__MAX_SITES;
static pthread_mutex_t lab__trace_lock = PTHREAD_MUTEX_INITIALIZER;
static char *lab__trace_arena;
static size_t lab__trace_arena_left;
_Atomic uint64_t lab__trace_dropped;

/* A capture in progress on this thread: an allocation made by the
 * unwinder itself is charged to its site alone. */
static __thread int lab__trace_busy;
void lab__trace_init(void) {
  if (lab__cfg.unwind == LAB_UNWIND_LIBUNWIND)
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

static uint64_t lab__trace_hash(uint16_t site, const uintptr_t *f, int n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ site;
  for (int i = 0; i < n; i++) {
    h ^= f[i];
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
  }
  return h ? h : 1;
}

static bool lab__trace_same(const lab__trace_t *t, uint64_t hash, uint16_t site,
                            const uintptr_t *f, int n) {
  return t->hash == hash && t->site == site && t->depth == n &&
         !memcmp(t->frames, f, (size_t)n * sizeof *f);
}

/* The stack's id, or 0 with *slot set to the empty slot where it goes. */
static uint32_t lab__trace_find(uint64_t hash, uint16_t site, const uintptr_t *f, int n,
                                uint32_t *slot) {
  uint32_t mask = LAB__TRACE_SLOTS - 1, k = (uint32_t)hash & mask, id;
  while ((id = atomic_load_explicit(&lab__trace_slot[k], memory_order_acquire))) {
    lab__trace_t *t = atomic_load_explicit(&lab__trace_at_[id], memory_order_acquire);
    if (LAB__LIKELY(lab__trace_same(t, hash, site, f, n))) return id;
    k = (k + 1) & mask;
  }
  *slot = k;
  return 0;
}

/* Add a stack under the lock; its origin id, or `site` if the table or
 * the arena is full. */
static uint16_t lab__trace_add(uint64_t hash, uint16_t site, const uintptr_t *f,
                               int n) {
  pthread_mutex_lock(&lab__trace_lock);
  uint32_t k, id = lab__trace_find(hash, site, f, n, &k);
  /* Another thread may have added it meanwhile. */
  if (id) goto out;
  id = site;
  size_t need = sizeof(lab__trace_t) + (size_t)n * sizeof *f;
  need = (need + 15) & ~(size_t)15;
  uint32_t next = atomic_load_explicit(&lab__trace_next, memory_order_relaxed);
  if (next >= LAB__MAX_ORIGINS) goto full;
  if (lab__trace_arena_left < need) {
    char *a = lab__os_map(LAB__TRACE_ARENA);
    if (!a) goto full;
    atomic_fetch_add(&lab__meta_bytes, LAB__TRACE_ARENA);
    atomic_fetch_add(&lab__mapped_bytes, LAB__TRACE_ARENA);
    lab__trace_arena = a;
    lab__trace_arena_left = LAB__TRACE_ARENA;
  }
  lab__trace_t *t = (lab__trace_t *)lab__trace_arena;
  lab__trace_arena += need;
  lab__trace_arena_left -= need;
  t->hash = hash;
  t->site = site;
  t->depth = (uint16_t)n;
  memcpy(t->frames, f, (size_t)n * sizeof *f);
  id = next;
  atomic_store_explicit(&lab__trace_at_[id], t, memory_order_release);
  atomic_store_explicit(&lab__trace_next, next + 1, memory_order_release);
  atomic_store_explicit(&lab__trace_slot[k], id, memory_order_release);
out:
  pthread_mutex_unlock(&lab__trace_lock);
  return (uint16_t)id;
full:
  atomic_fetch_add(&lab__trace_dropped, 1);
  goto out;
}

uint16_t lab__trace_origin(uint16_t site, const void *ra) {
  if (LAB__UNLIKELY(lab__trace_busy)) return site;
  lab__trace_busy = 1;
  uintptr_t buf[LAB_STACK_DEPTH_MAX + LAB__TRACE_SKIP];
  int depth = (int)lab__cfg.stack_depth, max = depth + LAB__TRACE_SKIP;
  uintptr_t from = (uintptr_t)ra;
  int n = lab__cfg.unwind == LAB_UNWIND_TABLES ? lab__unwind_tables(buf, depth, from, LAB__TRACE_SKIP)
          : lab__cfg.unwind == LAB_UNWIND_FP   ? lab__unwind_fp(buf, depth, from, LAB__TRACE_SKIP)
                                               : unw_backtrace((void **)buf, max);
  lab__trace_busy = 0;
  /* Drop the heap's own frames: the stack starts where the public entry
   * point returns to. */
  int skip = 0;
  while (skip < n && skip < LAB__TRACE_SKIP && buf[skip] != (uintptr_t)ra) skip++;
  if (skip == n || skip == LAB__TRACE_SKIP) skip = 0;
  n -= skip;
  if (n > (int)lab__cfg.stack_depth) n = (int)lab__cfg.stack_depth;
  if (n <= 0) return site;
  const uintptr_t *f = buf + skip;
  uint64_t hash = lab__trace_hash(site, f, n);
  uint32_t k, id = lab__trace_find(hash, site, f, n, &k);
  return id ? (uint16_t)id : lab__trace_add(hash, site, f, n);
}

uint16_t lab__origin_site_slow(uint16_t origin) {
  lab__trace_t *t = atomic_load_explicit(&lab__trace_at_[origin], memory_order_acquire);
  return t ? t->site : 0;
}

uint32_t lab__trace_limit(void) {
  return atomic_load_explicit(&lab__trace_next, memory_order_acquire);
}

const uintptr_t *lab__trace_frames(uint16_t origin, uint32_t *depth) {
  lab__trace_t *t = origin >= LAB__MAX_SITES
                        ? atomic_load_explicit(&lab__trace_at_[origin], memory_order_acquire)
                        : NULL;
  *depth = t ? t->depth : 0;
  return t ? t->frames : NULL;
}

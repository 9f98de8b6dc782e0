/* heap.c - the public allocation API, thread heaps, accounting and
 * reporting, shared by both backends. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "vg.h"

_Atomic uint64_t lab__mapped_bytes;
static _Atomic uint64_t lab__refusals; /* allocations refused for want of memory */
_Atomic uint64_t lab__meta_bytes;
int lab__vg;
/* The lab backend, outside memcheck: lab_try_malloc_at and lab_free_at
 * may take their one-piece paths. Set once, before any heap exists. */
static int lab__fast;
/* lab__fast, and no stacks to capture: lab_try_malloc_at may take its
 * one-piece path. */
static int lab__fast_alloc;
lab_config_t lab__cfg;

static pthread_once_t lab__once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lab__heaps_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t lab__heap_key;
static int lab__init_err;
static _Atomic int lab__started;       /* 1 once the backend is fixed */
static _Atomic(lab__heap_t *) lab__heaps;   /* every heap, newest first */
static lab__heap_t *lab__abandoned;         /* heaps of exited threads */
static _Atomic uint64_t lab__peak;
static __thread lab__heap_t *lab__tls_heap;
static __thread const lab_site_t *lab__tls_hook_site;
static _Atomic(lab_event_fn) lab__event_fn;
static _Atomic(void *) lab__event_ctx;
static _Atomic(lab_oom_handler_t) lab__oom;
static _Atomic uint64_t lab__orphan_errors[LAB_FAULT_COUNT];

#define LAB__QUAR_BYTES_DEFAULT ((size_t)1 << 20)
#define LAB__QUAR_BLOCKS_DEFAULT 512
#define LAB__MAX_REQUEST ((size_t)PTRDIFF_MAX - 65536)

/* ---- errors and names ---- */

const char *lab_strerror(int err) {
  switch (err) {
  case LAB_OK: return "success";
#define LAB__ERR_MSG(name, value, msg) case LAB_##name: return msg;
    LAB_ERRNO_MAP(LAB__ERR_MSG)
#undef LAB__ERR_MSG
  }
  return "unknown error";
}

static const char *const lab__fault_names[] = {
#define LAB__FAULT_NAME(name, desc) #name,
    LAB_FAULT_MAP(LAB__FAULT_NAME)
#undef LAB__FAULT_NAME
};
static const char *const lab__fault_descs[] = {
#define LAB__FAULT_DESC(name, desc) desc,
    LAB_FAULT_MAP(LAB__FAULT_DESC)
#undef LAB__FAULT_DESC
};

const char *lab_fault_name(lab_fault_t k) {
  return (unsigned)k < LAB_FAULT_COUNT ? lab__fault_names[k] : "unknown";
}
const char *lab_fault_desc(lab_fault_t k) {
  return (unsigned)k < LAB_FAULT_COUNT ? lab__fault_descs[k] : "unknown";
}

/* ---- fill and guard checks ---- */

/* A page of the quarantine poison: checking a block against it with
 * libc's vectorised memcmp is ~20 % faster per operation (whole-block
 * poisoning, the heap benchmark) than a loop over words. */
static const unsigned char lab__free_page[4096] = {[0 ... 4095] = LAB_FILL_FREE};

long lab__fill_check(const void *p, size_t n, unsigned char fill) {
  const unsigned char *b = p;
  size_t i = 0;
  if (fill == LAB_FILL_FREE && n >= 64) {
    while (i < n) {
      size_t k = n - i < sizeof lab__free_page ? n - i : sizeof lab__free_page;
      if (memcmp(b + i, lab__free_page, k)) break;
      i += k;
    }
    if (i == n) return -1;
  }
  for (; i < n; i++)
    if (b[i] != fill) return (long)i;
  return -1;
}

/* ---- life cycle ---- */

static void lab__heap_abandon(void *arg) {
  lab__heap_t *h = arg;
  pthread_mutex_lock(&lab__heaps_lock);
  h->next_free = lab__abandoned;
  lab__abandoned = h;
  pthread_mutex_unlock(&lab__heaps_lock);
  lab__tls_heap = NULL;
}

static void lab__global_init(void) {
  /* Only memcheck tracks blocks: it answers a request with -1 where other
   * tools (callgrind, cachegrind) leave the default 0. Under those the
   * heap then runs the instructions it runs natively, so their counts are
   * the native path's. */
  lab__vg = LAB__RUNNING_ON_MEMCHECK();
  lab__fast = lab__cfg.backend == LAB_BACKEND_LAB && !lab__vg;
  lab__fast_alloc = lab__fast && !lab__cfg.stack_depth;
  lab__trace_init();
  if (!lab__cfg.fill_limit) lab__cfg.fill_limit = LAB_FILL_DEFAULT;
  if (pthread_key_create(&lab__heap_key, lab__heap_abandon)) {
    lab__init_err = LAB_ENOMEM;
    return;
  }
  if (!lab__cfg.quarantine_bytes) lab__cfg.quarantine_bytes = LAB__QUAR_BYTES_DEFAULT;
  if (!lab__cfg.quarantine_blocks) lab__cfg.quarantine_blocks = LAB__QUAR_BLOCKS_DEFAULT;
  /* A power of two, so the ring index is a mask. */
  size_t q = 1;
  while (q < lab__cfg.quarantine_blocks) q <<= 1;
  lab__cfg.quarantine_blocks = q;
  lab__init_err = lab__seg_global_init();
}

int lab_init(const lab_config_t *cfg) {
  lab_config_t c = cfg ? *cfg : (lab_config_t){0};
  if (c.backend != LAB_BACKEND_LAB && c.backend != LAB_BACKEND_LIBC)
    return LAB_EINVAL;
  if (c.quarantine_blocks > ((size_t)1 << 24)) return LAB_EINVAL;
  if (c.stack_depth > LAB_STACK_DEPTH_MAX) return LAB_EINVAL;
  if (c.unwind != LAB_UNWIND_TABLES && c.unwind != LAB_UNWIND_FP &&
      c.unwind != LAB_UNWIND_LIBUNWIND)
    return LAB_EINVAL;
  pthread_mutex_lock(&lab__heaps_lock);
  int started = atomic_load(&lab__started);
  if (!started) {
    lab__cfg = c;
    atomic_store(&lab__started, 1);
  }
  pthread_mutex_unlock(&lab__heaps_lock);
  if (started && (c.backend != lab__cfg.backend ||
                  c.stack_depth != lab__cfg.stack_depth ||
                  (c.stack_depth && c.unwind != lab__cfg.unwind)))
    return LAB_EBUSY;
  pthread_once(&lab__once, lab__global_init);
  return lab__init_err;
}

const char *lab_backend_name(void) {
  return lab__cfg.backend == LAB_BACKEND_LIBC ? "libc" : "lab";
}

int lab_backend_parse(const char *s, lab_backend_t *out) {
  if (!s) return LAB_EINVAL;
  if (!strcmp(s, "lab")) *out = LAB_BACKEND_LAB;
  else if (!strcmp(s, "libc")) *out = LAB_BACKEND_LIBC;
  else return LAB_EINVAL;
  return LAB_OK;
}

static size_t lab__heap_bytes(void) {
  size_t page = lab__os_page();
  return (sizeof(lab__heap_t) + page - 1) & ~(page - 1);
}

/* Make (or adopt) the calling thread's heap. */
static lab__heap_t *lab__heap_make(void) {
  if (!atomic_load(&lab__started) && lab_init(NULL) != LAB_OK &&
      !atomic_load(&lab__started))
    return NULL;
  pthread_once(&lab__once, lab__global_init);
  if (lab__init_err) return NULL;
  pthread_mutex_lock(&lab__heaps_lock);
  lab__heap_t *h = lab__abandoned;
  if (h) lab__abandoned = h->next_free;
  pthread_mutex_unlock(&lab__heaps_lock);
  if (!h) {
    /* Counters for every origin, committed as origins are used: the
     * sites' share is counted as metadata here, the stacks' in
     * lab_stats. */
    size_t sites = sizeof(lab__site_ctr_t) * LAB__MAX_SITES;
    size_t origins = sizeof(lab__site_ctr_t) * LAB__MAX_ORIGINS;
    size_t q = sizeof(lab__hdr_t *) * lab__cfg.quarantine_blocks;
    h = lab__os_map(lab__heap_bytes());
    if (!h) return NULL;
    h->sites = lab__os_reserve(origins);
    h->q = lab__os_map(q);
    if (!h->sites || !h->q) {
      if (h->sites) lab__os_unmap(h->sites, origins);
      lab__os_unmap(h->q, q);
      lab__os_unmap(h, lab__heap_bytes());
      return NULL;
    }
    h->qcap = (uint32_t)lab__cfg.quarantine_blocks;
    h->qmax = lab__cfg.quarantine_bytes;
    uint64_t meta = lab__heap_bytes() + sites + q;
    atomic_fetch_add(&lab__meta_bytes, meta);
    atomic_fetch_add(&lab__mapped_bytes, meta);
    lab__heap_t *head = atomic_load(&lab__heaps);
    do h->next_all = head;
    while (!atomic_compare_exchange_weak(&lab__heaps, &head, h));
  }
  h->next_free = NULL;
  pthread_setspecific(lab__heap_key, h);
  lab__tls_heap = h;
  return h;
}

lab__heap_t *lab__heap_get(void) {
  lab__heap_t *h = lab__tls_heap;
  return LAB__LIKELY(h) ? h : lab__heap_make();
}

/* ---- reporting ---- */

void lab_set_event_callback(lab_event_fn fn, void *ctx) {
  atomic_store(&lab__event_ctx, ctx);
  atomic_store(&lab__event_fn, fn);
}

void lab__report(lab_fault_t kind, uint16_t alloc_site, uint16_t free_site,
                 size_t size, const void *ptr, const lab_site_t *site,
                 long offset) {
  const lab_site_t *as = lab__site_at(lab__origin_site(alloc_site));
  const lab_site_t *fs = lab__site_at(free_site);
  lab__heap_t *h = lab__heap_get();
  uint16_t charged = as ? alloc_site : lab__site_id(site);
  if (h) {
    LAB__BUMP(h->ctr.errors[kind], 1);
    if (charged) LAB__BUMP(h->sites[charged].errors[kind], 1);
  } else {
    atomic_fetch_add(&lab__orphan_errors[kind], 1);
  }
  lab_event_fn fn = atomic_load(&lab__event_fn);
  if (!fn) return;
  lab_event_t ev = {kind,   as,  site, fs, alloc_site >= LAB__MAX_SITES ? alloc_site : 0,
                    ptr,    as ? size : 0, offset};
  fn(&ev, atomic_load(&lab__event_ctx));
}

/* ---- accounting ---- */

static inline void lab__count_alloc(lab__heap_t *h, uint16_t sid, size_t n) {
  lab__site_ctr_t *c = &h->sites[sid];
  LAB__BUMP(c->allocs, 1);
  LAB__BUMP(c->alloc_bytes, n);
  uint64_t net = LAB__READ(h->ctr.net) + n;
  atomic_store_explicit(&h->ctr.net, net, memory_order_relaxed);
  if ((int64_t)net > (int64_t)LAB__READ(h->ctr.peak_net))
    atomic_store_explicit(&h->ctr.peak_net, net, memory_order_relaxed);
}

static inline void lab__count_free(lab__heap_t *h, uint16_t sid, size_t n) {
  lab__site_ctr_t *c = &h->sites[sid];
  LAB__BUMP(c->frees, 1);
  LAB__BUMP(c->free_bytes, n);
  LAB__BUMP(h->ctr.net, -(uint64_t)n);
}

uint64_t lab_live_bytes(void) {
  int64_t live = 0;
  for (lab__heap_t *h = atomic_load(&lab__heaps); h; h = h->next_all)
    live += (int64_t)LAB__READ(h->ctr.net);
  return live > 0 ? (uint64_t)live : 0;
}

static void lab__peak_raise(uint64_t v) {
  uint64_t cur = atomic_load_explicit(&lab__peak, memory_order_relaxed);
  while (v > cur && !atomic_compare_exchange_weak(&lab__peak, &cur, v)) {
  }
}

void lab__peak_note(void) { lab__peak_raise(lab_live_bytes()); }

/* The origin after `id`: the site ids below nsites, then the stack ids
 * from LAB__MAX_SITES on. */
static inline uint32_t lab__origin_next(uint32_t id, uint32_t nsites) {
  return id + 1 == nsites ? LAB__MAX_SITES : id + 1;
}

void lab_stats(lab_stats_t *out) {
  memset(out, 0, sizeof *out);
  uint64_t peak = 0;
  int64_t live = 0;
  uint32_t nsites = lab__site_limit(), ntraces = lab__trace_limit();
  for (lab__heap_t *h = atomic_load(&lab__heaps); h; h = h->next_all) {
    for (uint32_t id = 0; id < ntraces; id = lab__origin_next(id, nsites)) {
      out->total_allocs += LAB__READ(h->sites[id].allocs);
      out->total_frees += LAB__READ(h->sites[id].frees);
    }
    live += (int64_t)LAB__READ(h->ctr.net);
    out->reclaimed_bytes += LAB__READ(h->ctr.reclaimed_bytes);
    out->reclaimed_blocks += LAB__READ(h->ctr.reclaimed_blocks);
    out->quarantine_bytes += LAB__READ(h->ctr.quarantine_bytes);
    uint64_t p = LAB__READ(h->ctr.peak_net);
    if (p > peak) peak = p;
    for (int k = 0; k < LAB_FAULT_COUNT; k++)
      out->errors[k] += LAB__READ(h->ctr.errors[k]);
  }
  for (int k = 0; k < LAB_FAULT_COUNT; k++)
    out->errors[k] += atomic_load(&lab__orphan_errors[k]);
  out->live_bytes = live > 0 ? (uint64_t)live : 0;
  out->live_blocks = out->total_allocs > out->total_frees
                         ? out->total_allocs - out->total_frees
                         : 0;
  lab__peak_raise(out->live_bytes > peak ? out->live_bytes : peak);
  out->peak_live_bytes = atomic_load(&lab__peak);
  out->os_maps = atomic_load(&lab__os_maps);
  out->refusals = atomic_load(&lab__refusals);
  for (lab__heap_t *h = atomic_load(&lab__heaps); h; h = h->next_all)
    out->heaps++;
  /* The stacks' counters in each heap (the sites' are in meta_bytes). */
  uint64_t stack_ctrs = out->heaps * (ntraces - LAB__MAX_SITES) * sizeof(lab__site_ctr_t);
  out->overhead_bytes = out->live_blocks * LAB__BLOCK_OVERHEAD +
                        atomic_load(&lab__meta_bytes) + lab__scope_meta_bytes() +
                        stack_ctrs;
  if (lab__cfg.backend == LAB_BACKEND_LIBC) {
    /* libc holds at least our blocks, even where mallinfo2 knows nothing
     * (under a sanitizer's malloc). */
    uint64_t floor = out->live_bytes + out->live_blocks * LAB__BLOCK_OVERHEAD;
    uint64_t m = lab__libc_mapped();
    out->mapped_bytes = m > floor ? m : floor;
  } else {
    out->mapped_bytes = atomic_load(&lab__mapped_bytes) + stack_ctrs;
  }
}

/* One origin's counters summed over the thread heaps, into the fields
 * lab_site_stats_t and lab_stack_stats_t share. */
typedef struct lab__sum {
  uint64_t allocs, alloc_bytes, frees, free_bytes, errors[LAB_FAULT_COUNT];
} lab__sum_t;

static void lab__origin_sum(uint32_t id, lab__sum_t *s) {
  for (lab__heap_t *h = atomic_load(&lab__heaps); h; h = h->next_all) {
    lab__site_ctr_t *c = &h->sites[id];
    s->allocs += LAB__READ(c->allocs);
    s->alloc_bytes += LAB__READ(c->alloc_bytes);
    s->frees += LAB__READ(c->frees);
    s->free_bytes += LAB__READ(c->free_bytes);
    for (int e = 0; e < LAB_FAULT_COUNT; e++) s->errors[e] += LAB__READ(c->errors[e]);
  }
}

#define LAB__SUM_TO(out, s)                                                  \
  do {                                                                       \
    (out)->total_allocs += (s).allocs;                                       \
    (out)->total_bytes += (s).alloc_bytes;                                   \
    (out)->live_blocks += (s).allocs > (s).frees ? (s).allocs - (s).frees : 0; \
    (out)->live_bytes +=                                                     \
        (s).alloc_bytes > (s).free_bytes ? (s).alloc_bytes - (s).free_bytes : 0; \
    for (int e_ = 0; e_ < LAB_FAULT_COUNT; e_++) (out)->errors[e_] += (s).errors[e_]; \
  } while (0)

size_t lab_site_stats(lab_site_stats_t *out, size_t max) {
  uint32_t n = lab__site_limit(), ntraces = lab__trace_limit();
  size_t k = n - 1 < max ? n - 1 : max;
  for (size_t i = 0; i < k; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].site = lab__site_at((uint16_t)(i + 1));
  }
  /* A site's own origin, then the stacks that end at it. */
  for (uint32_t id = 1; id < ntraces; id = lab__origin_next(id, n)) {
    uint16_t site = lab__origin_site((uint16_t)id);
    if (!site || site - 1u >= k) continue;
    lab__sum_t sum = {0};
    lab__origin_sum(id, &sum);
    LAB__SUM_TO(&out[site - 1], sum);
  }
  return n - 1;
}

/* Stacks from id `first` on into out[0..max); how many there are (all, or
 * with `stop`, only those filled); *last: the id of the last one filled. */
static size_t lab__stack_stats_from(uint32_t first, lab_stack_stats_t *out, size_t max,
                                    bool stop, uint32_t *last) {
  uint32_t n = lab__site_limit(), ntraces = lab__trace_limit();
  size_t k = 0;
  for (uint32_t id = first; id < ntraces; id = lab__origin_next(id, n)) {
    lab__sum_t sum = {0};
    lab__origin_sum(id, &sum);
    bool any = sum.allocs;
    for (int e = 0; e < LAB_FAULT_COUNT; e++) any |= sum.errors[e] != 0;
    if (!any) continue;
    if (k < max) {
      lab_stack_stats_t *s = &out[k];
      memset(s, 0, sizeof *s);
      s->id = id;
      s->site = lab__site_at(lab__origin_site((uint16_t)id));
      s->frames = lab__trace_frames((uint16_t)id, &s->depth);
      LAB__SUM_TO(s, sum);
      *last = id;
    } else if (stop) {
      break;
    }
    k++;
  }
  return k;
}

size_t lab_stack_stats(lab_stack_stats_t *out, size_t max) {
  uint32_t last;
  return lab__stack_stats_from(1, out, max, false, &last);
}

size_t lab_stack_stats_next(uint32_t *cursor, lab_stack_stats_t *out, size_t max) {
  if (!max) return 0;
  uint32_t first = *cursor ? lab__origin_next(*cursor, lab__site_limit()) : 1;
  return lab__stack_stats_from(first, out, max, true, cursor);
}

const uintptr_t *lab_stack_frames(uint32_t id, uint32_t *depth) {
  *depth = 0;
  if (id < LAB__MAX_SITES || id >= lab__trace_limit()) return NULL;
  return lab__trace_frames((uint16_t)id, depth);
}

uint64_t lab_stack_dropped(void) { return atomic_load(&lab__trace_dropped); }

uint32_t lab_stack_depth(void) { return lab__cfg.stack_depth; }

/* ---- the memory limit ---- */

_Atomic uint64_t lab__limit;
__thread uint64_t lab__tls_reserve;
static _Atomic(lab_refusal_fn) lab__refusal_fn;
static void *_Atomic lab__refusal_ctx;

void lab_set_limit(uint64_t bytes) { atomic_store(&lab__limit, bytes); }

uint64_t lab_limit(void) { return atomic_load(&lab__limit); }

uint64_t lab_set_reserve(uint64_t bytes) {
  uint64_t old = lab__tls_reserve;
  lab__tls_reserve = bytes;
  return old;
}

void lab_set_refusal_callback(lab_refusal_fn fn, void *ctx) {
  atomic_store(&lab__refusal_ctx, ctx);
  atomic_store(&lab__refusal_fn, fn);
}

static void lab__refused(size_t n, const lab_site_t *site) {
  atomic_fetch_add_explicit(&lab__refusals, 1, memory_order_relaxed);
  lab_refusal_fn fn = atomic_load(&lab__refusal_fn);
  if (fn) fn(n, site, atomic_load(&lab__refusal_ctx));
}

/* ---- allocation ---- */

/* Where the public entry point that is running returns to: the first
 * frame of the caller's stack. The entry points are kept out of line
 * (LAB__ENTRY) so that it is. */
#define LAB__RA() __builtin_return_address(0)
#define LAB__ENTRY __attribute__((noinline))

/* Out of line: the fast path of lab_try_malloc_at ends in a jump here,
 * and saves no registers for it. `ra`: where the entry point returns. */
static __attribute__((noinline)) void *lab__alloc(size_t n,
                                                  const lab_site_t *site,
                                                  bool zero,
                                                  lab_scope_t *scope,
                                                  const void *ra) {
  lab__heap_t *h = lab__tls_heap;
  if (LAB__UNLIKELY(!h) && !(h = lab__heap_make())) goto oom;
  if (LAB__UNLIKELY(n > LAB__MAX_REQUEST)) goto oom;
  if (scope && lab__scope_reserve(scope) != LAB_OK) goto oom;
  lab__hdr_t *b = lab__cfg.backend == LAB_BACKEND_LAB ? lab__seg_alloc(h, n, zero)
                                                       : lab__libc_alloc(n, zero);
  if (LAB__UNLIKELY(!b)) goto oom;
  uint16_t sid = lab__site_id(site);
  if (lab__cfg.stack_depth) sid = lab__trace_origin(sid, ra);
  b->size = n < LAB__SIZE_LARGE ? (uint32_t)n : LAB__SIZE_LARGE;
  b->site = sid;
  atomic_store_explicit(&b->scope, 0, memory_order_relaxed);
  b->slot = 0;
  atomic_store_explicit(&b->canary, LAB__CANARY_LIVE, memory_order_relaxed);
  void *u = lab__user_of(b);
  lab__guard_set(u, n);
  lab__count_alloc(h, sid, n);
  if (scope) lab__scope_add(scope, b, n);
  if (lab__vg && lab__cfg.backend == LAB_BACKEND_LAB)
    VALGRIND_MALLOCLIKE_BLOCK(u, n, 0, zero);
  return u;
oom:
  lab__refused(n, site);
  errno = ENOMEM;
  return NULL;
}

/* The id of a registered site, 0 for NULL; -1 if it has none yet. */
static inline int32_t lab__site_id_known(const lab_site_t *site) {
  if (!site) return 0;
  uint32_t id = __atomic_load_n(&site->id, __ATOMIC_ACQUIRE);
  return LAB__LIKELY(id) ? (int32_t)id : -1;
}

static inline __attribute__((always_inline)) void *lab__try_malloc(
    size_t n, const lab_site_t *site, const void *ra) {
  /* A recycled slot of the thread's current page, outside any scope:
   * no call, so no registers to save. Anything else: lab__alloc. */
  lab__heap_t *h = lab__tls_heap;
  int32_t sid;
  lab__hdr_t *b;
  if (LAB__LIKELY(h && lab__fast_alloc && !lab__tls_scope &&
                  n <= LAB__SEG_SMALL_MAX &&
                  (sid = lab__site_id_known(site)) >= 0 &&
                  (b = lab__seg_alloc_fast(h, n)))) {
    b->size = (uint32_t)n;
    b->site = (uint16_t)sid;
    atomic_store_explicit(&b->scope, 0, memory_order_relaxed);
    b->slot = 0;
    atomic_store_explicit(&b->canary, LAB__CANARY_LIVE, memory_order_relaxed);
    void *u = lab__user_of(b);
    lab__guard_set(u, n);
    lab__count_alloc(h, (uint16_t)sid, n);
    return u;
  }
  return lab__alloc(n, site, false, lab__tls_scope, ra);
}

LAB__ENTRY void *lab_try_malloc_at(size_t n, const lab_site_t *site) {
  return lab__try_malloc(n, site, LAB__RA());
}

static inline void *lab__try_calloc(size_t count, size_t size,
                                    const lab_site_t *site, const void *ra) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) {
    errno = ENOMEM;
    return NULL;
  }
  return lab__alloc(n, site, true, lab__tls_scope, ra);
}

LAB__ENTRY void *lab_try_calloc_at(size_t count, size_t size,
                                   const lab_site_t *site) {
  return lab__try_calloc(count, size, site, LAB__RA());
}

static inline char *lab__try_strdup(const char *s, const lab_site_t *site,
                                    const void *ra) {
  size_t n = strlen(s) + 1;
  char *d = lab__alloc(n, site, false, lab__tls_scope, ra);
  if (d) memcpy(d, s, n);
  return d;
}

LAB__ENTRY char *lab_try_strdup_at(const char *s, const lab_site_t *site) {
  return lab__try_strdup(s, site, LAB__RA());
}

lab__hdr_t *lab__validate(const void *p, const lab_site_t *site,
                          lab__use_t use) {
  return lab__cfg.backend == LAB_BACKEND_LAB
             ? lab__seg_validate(p, site, use)
             : lab__libc_validate(p, site, use);
}

size_t lab__size_of(const lab__hdr_t *h) {
  return lab__cfg.backend == LAB_BACKEND_LAB ? lab__seg_size(h) : h->size;
}

/* lab__free_hdr, inlined into lab_free_at's two general paths (called
 * from both, GCC would keep it out of line: 30 instructions a free of the
 * libc backend). */
static inline __attribute__((always_inline)) void lab__free_hdr_here(
    lab__hdr_t *b, uint16_t free_site, bool reclaimed) {
  lab__heap_t *h = lab__heap_get();
  size_t n = lab__size_of(b);
  b->slot = free_site; /* out of any scope now: slot names the freer */
  if (h) {
    lab__count_free(h, b->site, n);
    if (reclaimed) {
      LAB__BUMP(h->ctr.reclaimed_blocks, 1);
      LAB__BUMP(h->ctr.reclaimed_bytes, n);
    }
  }
  if (lab__cfg.backend == LAB_BACKEND_LIBC) lab__libc_free(b, n);
  else if (h) lab__seg_free(h, b, n);
  /* else no heap could be made for this thread: the block stays live. */
}

void lab__free_hdr(lab__hdr_t *b, uint16_t free_site, bool reclaimed) {
  lab__free_hdr_here(b, free_site, reclaimed);
}

/* lab__unscope for a block that is (or was) in a scope: out of line, so
 * the free of a block in none pays one load and a branch (inline, this
 * cost the free path 3 instructions a call). A scoped free takes the
 * scope lock anyway. */
static __attribute__((noinline)) bool lab__unscope_slow(
    lab__hdr_t *b, const void *p, const lab_site_t *site, lab__use_t use) {
  size_t n = lab__size_of(b);
  if (lab__scope_remove(b, n)) return true;
  lab__report(lab__freed_fault(use), b->site, lab__scope_reclaim_site(), n, p,
              site, 0);
  return false;
}

/* Take a validated block out of its scope before it is freed (for `use`).
 * False, after reporting the use of a freed block, if the scope's reclaim
 * took it first. */
static inline bool lab__unscope(lab__hdr_t *b, const void *p,
                                const lab_site_t *site, lab__use_t use) {
  if (LAB__LIKELY(!atomic_load_explicit(&b->scope, memory_order_relaxed)))
    return true;
  return lab__unscope_slow(b, p, site, use);
}

/* lab_free_at's general path for a block already validated. */
static __attribute__((noinline)) void lab__free_valid(lab__hdr_t *b, void *p,
                                                     const lab_site_t *site,
                                                     uint16_t sid) {
  if (lab__unscope(b, p, site, LAB__USE_FREE)) lab__free_hdr_here(b, sid, false);
}

/* lab_free_at's general path: any backend, block or mistake. */
static inline __attribute__((always_inline)) void lab__free_general(
    void *p, const lab_site_t *site) {
  lab__hdr_t *b = lab__validate(p, site, LAB__USE_FREE);
  if (b && lab__unscope(b, p, site, LAB__USE_FREE))
    lab__free_hdr_here(b, lab__site_id(site), false);
}

/* The same out of line, for what the fast path hands on. */
static __attribute__((noinline)) void lab__free_slow(void *p,
                                                    const lab_site_t *site) {
  lab__free_general(p, site);
}

void lab_free_at(void *p, const lab_site_t *site) {
  if (!p) return;
  /* The header, usually cold, while the pointer is validated. A prefetch
   * never faults, whatever p is. */
  __builtin_prefetch((char *)p - LAB__HDR_SIZE);
  lab__heap_t *h = lab__tls_heap;
  if (LAB__LIKELY(h)) {
    if (h->qn == h->qcap) /* the block about to leave */
      __builtin_prefetch(h->q[h->qhead]);
    int32_t sid;
    lab__hdr_t *b, *valid = NULL;
    /* The common free in one piece, without a call; whatever it does not
     * handle it leaves untouched for the general path. */
    if (LAB__LIKELY(lab__fast && (sid = lab__site_id_known(site)) >= 0)) {
      if (LAB__LIKELY(b = lab__seg_free_fast(h, p, (uint16_t)sid, &valid))) {
        lab__count_free(h, b->site, b->size);
        return;
      }
      if (valid) { /* a live block, in a scope or hard to free: */
        lab__free_valid(valid, p, site, (uint16_t)sid);
        return;
      }
    } else {
      /* The libc backend, or memcheck: the general path in place, as
       * before the fast path, so it pays for no second call. */
      lab__free_general(p, site);
      return;
    }
  }
  lab__free_slow(p, site);
}

/* realloc of a non-NULL p to n > 0 bytes. NULL with *bad set if p is no
 * live block (reported); NULL alone when out of memory. */
static void *lab__realloc(void *p, size_t n, const lab_site_t *site,
                          bool *bad, const void *ra) {
  *bad = true;
  lab__hdr_t *b = lab__validate(p, site, LAB__USE_REALLOC);
  if (!b) goto bad;
  uint16_t sid = atomic_load_explicit(&b->scope, memory_order_relaxed);
  if (LAB__UNLIKELY(sid == LAB__SCOPE_RECLAIMING)) {
    lab__report(LAB_FAULT_use_after_free, b->site, lab__scope_reclaim_site(),
                lab__size_of(b), p, site, 0);
    goto bad;
  }
  *bad = false;
  void *q = lab__alloc(n, site, false, sid ? lab__scope_at(sid) : NULL, ra);
  if (!q) return NULL;
  size_t old = lab__size_of(b);
  memcpy(q, p, old < n ? old : n);
  if (LAB__UNLIKELY(!lab__unscope(b, p, site, LAB__USE_REALLOC))) {
    /* Reclaimed while we copied: what we copied may be poison. */
    lab_free_at(q, site);
    *bad = true;
    goto bad;
  }
  lab__free_hdr(b, lab__site_id(site), false);
  return q;
bad:
  errno = EINVAL;
  return NULL;
}

LAB__ENTRY void *lab_try_realloc_at(void *p, size_t n, const lab_site_t *site) {
  if (!p) return lab__try_malloc(n, site, LAB__RA());
  if (n == 0) {
    lab_free_at(p, site);
    return NULL;
  }
  bool bad;
  return lab__realloc(p, n, site, &bad, LAB__RA());
}

size_t lab_usable_size(const void *p) {
  if (!p) return 0;
  lab__hdr_t *b = lab__validate(p, NULL, LAB__USE_QUERY);
  return b ? lab__size_of(b) : 0;
}

/* ---- the never-NULL family ---- */

static void lab__default_oom(size_t size) {
  fprintf(stderr, "leaklab: out of memory allocating %zu bytes\n", size);
  abort();
}

void lab_set_oom_handler(lab_oom_handler_t fn) { atomic_store(&lab__oom, fn); }

static void lab__oom_now(size_t size) {
  lab_oom_handler_t fn = atomic_load(&lab__oom);
  (fn ? fn : lab__default_oom)(size);
}

#define LAB__NEVER_NULL(call, size)                                          \
  do {                                                                       \
    void *r_ = (call);                                                       \
    if (LAB__LIKELY(r_)) return r_;                                          \
    lab__oom_now(size);                                                      \
    if ((r_ = (call))) return r_;                                            \
    lab__default_oom(size);                                                  \
    return NULL;                                                             \
  } while (0)

LAB__ENTRY void *lab_malloc_at(size_t n, const lab_site_t *site) {
  LAB__NEVER_NULL(lab__try_malloc(n, site, LAB__RA()), n);
}

LAB__ENTRY void *lab_calloc_at(size_t count, size_t size, const lab_site_t *site) {
  size_t n;
  if (__builtin_mul_overflow(count, size, &n)) n = SIZE_MAX;
  LAB__NEVER_NULL(lab__try_calloc(count, size, site, LAB__RA()), n);
}

LAB__ENTRY char *lab_strdup_at(const char *s, const lab_site_t *site) {
  LAB__NEVER_NULL(lab__try_strdup(s, site, LAB__RA()), strlen(s) + 1);
}

LAB__ENTRY void *lab_realloc_at(void *p, size_t n, const lab_site_t *site) {
  if (!p) LAB__NEVER_NULL(lab__try_malloc(n, site, LAB__RA()), n);
  if (n == 0) {
    lab_free_at(p, site);
    return NULL;
  }
  /* A bad p gets NULL, as from the try family; only running out of memory
   * calls the handler. */
  bool bad;
  void *q = lab__realloc(p, n, site, &bad, LAB__RA());
  if (LAB__LIKELY(q) || bad) return q;
  lab__oom_now(n);
  if ((q = lab__realloc(p, n, site, &bad, LAB__RA())) || bad) return q;
  lab__default_oom(n);
  return NULL;
}

/* ---- whole-heap operations ---- */

size_t lab_check(void) {
  if (lab__cfg.backend != LAB_BACKEND_LAB) return 0;
  lab__heap_t *h = lab__heap_get();
  if (!h) return 0;
  size_t found = lab__seg_check(h);
  pthread_mutex_lock(&lab__heaps_lock);
  for (lab__heap_t *a = lab__abandoned; a; a = a->next_free)
    found += lab__seg_check(a);
  pthread_mutex_unlock(&lab__heaps_lock);
  return found + lab__seg_check_large();
}

void lab_flush_quarantine(void) {
  lab__heap_t *h = lab__heap_get();
  if (h && lab__cfg.backend == LAB_BACKEND_LAB) lab__seg_flush(h);
}

void lab_trim(void) {
  lab__heap_t *h = lab__heap_get();
  if (h && lab__cfg.backend == LAB_BACKEND_LAB) lab__seg_trim(h);
}

/* ---- plain-signature hooks ---- */

static lab_site_t lab__cjson_site = {"cJSON", "cJSON", "cjson", 0, 0};

LAB__ENTRY void *lab_hook_malloc(size_t n) {
  const lab_site_t *s = lab__tls_hook_site;
  return lab__try_malloc(n, s ? s : &lab__cjson_site, LAB__RA());
}

void lab_hook_free(void *p) { lab_free_at(p, &lab__cjson_site); }

const lab_site_t *lab_hook_site(const lab_site_t *site) {
  const lab_site_t *old = lab__tls_hook_site;
  lab__tls_hook_site = site;
  return old;
}

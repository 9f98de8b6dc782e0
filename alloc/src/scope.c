/* scope.c - request scopes: every block allocated while a scope is current
 * is tagged with it, so closing the scope can report and reclaim what the
 * request left behind, like an APR or nginx request pool.
 *
 * A scope keeps an array of its blocks; each block's header holds its index
 * there, so removal is O(1) (swap with the last). Scopes come from a pool
 * of 4 KiB objects that are never unmapped; an id in 1..65534 names each
 * (65535 is LAB__SCOPE_RECLAIMING).
 * Each thread's heap keeps the last scope it closed for its next open, so
 * a server that opens and closes one per request takes no pool lock and
 * keeps the scope's lines in its own core's cache. */
#include <stdio.h>

#include "internal.h"

#define LAB__MAX_SCOPES LAB__SCOPE_RECLAIMING /* ids below it */
#define LAB__SCOPE_BYTES 4096
#define LAB__SCOPE_CHUNK 16 /* scopes mapped at a time */

struct lab_scope {
  /* Guards the fields below. A spin lock: the sections are a few stores
   * long and almost never contended (one thread serves a request; another
   * takes it only to free a block tagged with it). */
  pthread_spinlock_t lock;
  _Atomic bool full;        /* n == cap, read without the lock as a hint */
  lab__hdr_t **blocks;      /* live tagged blocks */
  uint32_t n, cap;          /* used and capacity of blocks */
  uint64_t bytes;           /* their requested bytes */
  size_t ext_bytes;         /* mapping size when blocks is not inline */
  lab_scope_t *next_free;   /* in the pool's free list */
  uint16_t id;              /* index in the scope table */
  char label[40];           /* what opened it, for reports */
  lab__hdr_t *inline_blocks[]; /* the first blocks, in this object */
};

#define LAB__SCOPE_INLINE                                                    \
  ((LAB__SCOPE_BYTES - sizeof(lab_scope_t)) / sizeof(lab__hdr_t *))

__thread lab_scope_t *lab__tls_scope;
static lab_scope_t *lab__scopes[LAB__MAX_SCOPES]; /* by id; never cleared */
static pthread_mutex_t lab__pool_lock = PTHREAD_MUTEX_INITIALIZER;
static lab_scope_t *lab__pool;
static uint32_t lab__nscopes = 1; /* next id to hand out */
static _Atomic uint64_t lab__scope_bytes;
static lab_site_t lab__reclaim_site = {"scope", "lab_scope_close", "reclaim",
                                       0, 0};

uint64_t lab__scope_meta_bytes(void) { return atomic_load(&lab__scope_bytes); }

uint16_t lab__scope_reclaim_site(void) {
  return lab__site_id(&lab__reclaim_site);
}

lab_scope_t *lab__scope_at(uint16_t id) {
  return __atomic_load_n(&lab__scopes[id], __ATOMIC_ACQUIRE);
}

/* Map a chunk of scopes into the pool; caller holds the pool lock. */
static int lab__pool_grow(void) {
  uint32_t k = LAB__SCOPE_CHUNK;
  if (lab__nscopes + k > LAB__MAX_SCOPES) k = LAB__MAX_SCOPES - lab__nscopes;
  if (!k) return LAB_ENOSPC;
  char *mem = lab__os_map((size_t)k * LAB__SCOPE_BYTES);
  if (!mem) return LAB_ENOMEM;
  atomic_fetch_add(&lab__scope_bytes, (uint64_t)k * LAB__SCOPE_BYTES);
  atomic_fetch_add(&lab__mapped_bytes, (uint64_t)k * LAB__SCOPE_BYTES);
  for (uint32_t i = 0; i < k; i++) {
    lab_scope_t *s = (lab_scope_t *)(mem + (size_t)i * LAB__SCOPE_BYTES);
    pthread_spin_init(&s->lock, PTHREAD_PROCESS_PRIVATE);
    s->id = (uint16_t)lab__nscopes;
    __atomic_store_n(&lab__scopes[lab__nscopes++], s, __ATOMIC_RELEASE);
    s->next_free = lab__pool;
    lab__pool = s;
  }
  return LAB_OK;
}

lab_scope_t *lab_scope_open(const char *label) {
  lab__heap_t *h = lab__heap_get();
  lab_scope_t *s = h ? h->spare_scope : NULL;
  if (s) {
    h->spare_scope = NULL;
  } else {
    pthread_mutex_lock(&lab__pool_lock);
    if (!lab__pool && lab__pool_grow() != LAB_OK) {
      pthread_mutex_unlock(&lab__pool_lock);
      return NULL;
    }
    s = lab__pool;
    lab__pool = s->next_free;
    pthread_mutex_unlock(&lab__pool_lock);
  }
  pthread_spin_lock(&s->lock);
  s->next_free = NULL;
  s->blocks = s->inline_blocks;
  s->cap = (uint32_t)LAB__SCOPE_INLINE;
  s->n = 0;
  atomic_store_explicit(&s->full, false, memory_order_relaxed);
  s->bytes = 0;
  s->ext_bytes = 0;
  snprintf(s->label, sizeof s->label, "%s", label ? label : "");
  pthread_spin_unlock(&s->lock);
  lab__tls_scope = s;
  return s;
}

lab_scope_t *lab_scope_current(void) { return lab__tls_scope; }

void lab_scope_enter(lab_scope_t *s) { lab__tls_scope = s; }

void lab_scope_usage(const lab_scope_t *cs, size_t *blocks, size_t *bytes) {
  lab_scope_t *s = (lab_scope_t *)cs;
  pthread_spin_lock(&s->lock);
  if (blocks) *blocks = s->n;
  if (bytes) *bytes = s->bytes;
  pthread_spin_unlock(&s->lock);
}

/* Double the block array; caller holds the scope lock. */
static int lab__scope_grow(lab_scope_t *s) {
  size_t bytes = (size_t)s->cap * 2 * sizeof(lab__hdr_t *);
  lab__hdr_t **nb = lab__os_map(bytes);
  if (!nb) return LAB_ENOMEM;
  memcpy(nb, s->blocks, s->n * sizeof *nb);
  if (s->ext_bytes) {
    lab__os_unmap(s->blocks, s->ext_bytes);
    atomic_fetch_sub(&lab__scope_bytes, s->ext_bytes);
    atomic_fetch_sub(&lab__mapped_bytes, s->ext_bytes);
  }
  atomic_fetch_add(&lab__scope_bytes, bytes);
  atomic_fetch_add(&lab__mapped_bytes, bytes);
  s->blocks = nb;
  s->ext_bytes = bytes;
  s->cap *= 2;
  return LAB_OK;
}

int lab__scope_reserve(lab_scope_t *s) {
  /* Room is the rule (hundreds of blocks fit inline): no lock then. A
   * stale answer only means lab__scope_add grows the array itself. */
  if (LAB__LIKELY(!atomic_load_explicit(&s->full, memory_order_relaxed)))
    return LAB_OK;
  pthread_spin_lock(&s->lock);
  int err = s->n < s->cap ? LAB_OK : lab__scope_grow(s);
  atomic_store_explicit(&s->full, s->n >= s->cap, memory_order_relaxed);
  pthread_spin_unlock(&s->lock);
  return err;
}

void lab__scope_add(lab_scope_t *s, lab__hdr_t *h, size_t size) {
  pthread_spin_lock(&s->lock);
  /* Reserved before the block was made; only if another thread took the
   * room and the array cannot grow does the block stay untagged. */
  if (s->n < s->cap || lab__scope_grow(s) == LAB_OK) {
    h->slot = s->n;
    s->blocks[s->n++] = h;
    s->bytes += size;
    atomic_store_explicit(&h->scope, s->id, memory_order_relaxed);
    atomic_store_explicit(&s->full, s->n >= s->cap, memory_order_relaxed);
  }
  pthread_spin_unlock(&s->lock);
}

bool lab__scope_remove(lab__hdr_t *h, size_t size) {
  uint16_t id = atomic_load_explicit(&h->scope, memory_order_relaxed);
  if (!id) return true;
  if (id == LAB__SCOPE_RECLAIMING) return false;
  lab_scope_t *s = lab__scope_at(id);
  pthread_spin_lock(&s->lock);
  /* Under the lock the tag is final: still id (ours to remove), 0 (its
   * scope closed without reclaim: live, ours) or taken to reclaim. */
  uint16_t now = atomic_load_explicit(&h->scope, memory_order_relaxed);
  if (now == id) {
    uint32_t i = h->slot;
    lab__hdr_t *last = s->blocks[--s->n];
    s->blocks[i] = last;
    last->slot = i;
    s->bytes -= size;
    atomic_store_explicit(&h->scope, 0, memory_order_relaxed);
    atomic_store_explicit(&s->full, false, memory_order_relaxed);
  }
  pthread_spin_unlock(&s->lock);
  return now != LAB__SCOPE_RECLAIMING;
}

int lab_detach(void *p) {
  lab__hdr_t *h = p ? lab__validate(p, NULL, LAB__USE_QUERY) : NULL;
  if (!h) return LAB_EINVAL;
  /* A block its scope is reclaiming is as good as freed. */
  return lab__scope_remove(h, lab__size_of(h)) ? LAB_OK : LAB_EINVAL;
}

/* Add a block to the per-site tally of a report (open addressing). */
typedef struct lab__tally {
  uint16_t site;
  size_t blocks, bytes;
} lab__tally_t;
#define LAB__TALLY 128

static void lab__tally_add(lab__tally_t *t, uint16_t site, size_t bytes) {
  for (unsigned i = 0, k = site % LAB__TALLY; i < LAB__TALLY;
       i++, k = (k + 1) % LAB__TALLY) {
    if (t[k].blocks && t[k].site != site) continue;
    t[k].site = site;
    t[k].blocks++;
    t[k].bytes += bytes;
    return;
  }
  /* More distinct sites than the tally holds: counted in the totals only. */
}

static void lab__report_fill(lab_scope_report_t *r, lab__tally_t *t) {
  r->nsites = 0;
  for (unsigned i = 0; i < LAB__TALLY; i++) {
    if (!t[i].blocks) continue;
    lab_leak_t e = {lab__site_at(t[i].site), t[i].blocks, t[i].bytes};
    size_t j = r->nsites < LAB_SCOPE_REPORT_SITES ? r->nsites++
                                                  : LAB_SCOPE_REPORT_SITES;
    if (j == LAB_SCOPE_REPORT_SITES) {
      if (e.bytes <= r->sites[j - 1].bytes) continue;
      j--;
    }
    while (j > 0 && r->sites[j - 1].bytes < e.bytes) {
      r->sites[j] = r->sites[j - 1];
      j--;
    }
    r->sites[j] = e;
  }
}

void lab_scope_close(lab_scope_t *s, unsigned flags,
                     lab_scope_report_t *report) {
  if (!s) return;
  if (lab__tls_scope == s) lab__tls_scope = NULL;
  lab__tally_t tally[LAB__TALLY];
  /* Reclaimed blocks keep a tag that says so until they are reused: a
   * free that comes after this lock, however early, finds the block
   * taken and leaves it to the reclaim (lab__scope_remove). So each
   * block is freed once, without an atomic on the plain free path. */
  uint16_t tag = flags & LAB_SCOPE_RECLAIM ? LAB__SCOPE_RECLAIMING : 0;
  pthread_spin_lock(&s->lock);
  uint32_t n = s->n;
  uint64_t bytes = s->bytes;
  if (report && n) memset(tally, 0, sizeof tally);
  for (uint32_t i = 0; i < n; i++) {
    lab__hdr_t *h = s->blocks[i];
    atomic_store_explicit(&h->scope, tag, memory_order_relaxed);
    if (report) lab__tally_add(tally, lab__origin_site(h->site), lab__size_of(h));
  }
  s->n = 0;
  atomic_store_explicit(&s->full, false, memory_order_relaxed);
  s->bytes = 0;
  pthread_spin_unlock(&s->lock);
  if (report) {
    report->blocks = n;
    report->bytes = bytes;
    report->nsites = 0;
    if (n) lab__report_fill(report, tally);
  }
  /* The array is ours until the scope goes back to the pool, and so are
   * the blocks tagged as reclaimed. */
  if (flags & LAB_SCOPE_RECLAIM) {
    uint16_t rs = lab__site_id(&lab__reclaim_site);
    for (uint32_t i = 0; i < n; i++) lab__free_hdr(s->blocks[i], rs, true);
  }
  if (s->ext_bytes) {
    lab__os_unmap(s->blocks, s->ext_bytes);
    atomic_fetch_sub(&lab__scope_bytes, s->ext_bytes);
    atomic_fetch_sub(&lab__mapped_bytes, s->ext_bytes);
    s->ext_bytes = 0;
  }
  s->blocks = s->inline_blocks;
  lab__heap_t *h = lab__heap_get();
  if (h && !h->spare_scope) {
    h->spare_scope = s;
    return;
  }
  pthread_mutex_lock(&lab__pool_lock);
  s->next_free = lab__pool;
  lab__pool = s;
  pthread_mutex_unlock(&lab__pool_lock);
}

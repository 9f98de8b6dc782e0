/* segment.c - the lab backend: size classes, pages, segments, large blocks,
 * the quarantine and the detectors that need to know the heap's layout.
 *
 * A segment is 4 MiB, aligned to 4 MiB, owned by one thread heap. Unit 0
 * (64 KiB) holds the segment header; units 1..63 are handed out in runs,
 * each run a page of one size class with its own free list. A block freed
 * by another thread returns to its owner through the owner's `remote`
 * stack. Blocks above the largest class get a mapping of their own.
 * A flat byte map over the address space says which 4 MiB regions are ours,
 * so any pointer can be validated before it is touched.
 */
#include <limits.h>
#include <stdio.h>

#include "internal.h"
#include "vg.h"

#define LAB__SEG_SHIFT 22
#define LAB__SEG_SIZE ((size_t)1 << LAB__SEG_SHIFT)
#define LAB__UNIT_SHIFT 16
#define LAB__UNIT_SIZE ((size_t)1 << LAB__UNIT_SHIFT)
#define LAB__NUNITS 64
#define LAB__ADDR_BITS 47
#define LAB__SEGMAP_LEN ((size_t)1 << (LAB__ADDR_BITS - LAB__SEG_SHIFT))
#define LAB__LARGE_HDR 4096 /* bytes before a large block's user pointer */
#define LAB__SMALL_MAX LAB__SEG_SMALL_MAX
#define LAB__INV_SHIFT 40
#define LAB__SPARE_BYTES ((size_t)1 << 20) /* empty pages kept per class */

enum { LAB__MAP_NONE, LAB__MAP_SMALL, LAB__MAP_LARGE };
enum { LAB__UNIT_FREE, LAB__UNIT_HEAD, LAB__UNIT_TAIL };

typedef struct lab__page {
  lab__hdr_t *free;          /* local free list, linked through user bytes */
  uint8_t *start;            /* first slot */
  struct lab__page *next;    /* in the heap's avail list */
  struct lab__page *prev;
  lab__heap_t *owner;        /* heap that allocates from this page */
  uint64_t inv;              /* ceil(2^40 / slot), to divide by slot */
  uint32_t slot;             /* bytes per slot, header and guard included */
  uint32_t capacity;         /* slots in the page */
  _Atomic uint32_t carved;   /* slots handed out at least once */
  uint32_t used;             /* slots live or in some quarantine */
  uint8_t cls;               /* size class */
  uint8_t units;             /* run length in units */
  uint8_t head;              /* tail units: index of the run's head */
  uint8_t kind;              /* LAB__UNIT_* */
  uint8_t in_avail;          /* on the heap's avail list */
} lab__page_t;

typedef struct lab__segment {
  uint32_t magic;              /* LAB__SEG_MAGIC */
  lab__heap_t *owner;          /* heap whose pages these are */
  struct lab__segment *next;   /* in the owner's segment list */
  struct lab__segment *prev;
  uint64_t used_units;         /* bit i set: unit i is in use (bit 0: us) */
  lab__page_t pages[LAB__NUNITS]; /* one descriptor per unit */
} lab__segment_t;

typedef struct lab__large {
  uint32_t magic;              /* LAB__LARGE_MAGIC */
  size_t map_size;             /* bytes mapped */
  size_t size;                 /* requested bytes */
  struct lab__large *next;     /* global list of large blocks */
  struct lab__large *prev;
} lab__large_t;

#define LAB__SEG_MAGIC 0x5E65E6u
#define LAB__LARGE_MAGIC 0x1A26Eu
#define LAB__SEG_META                                                        \
  ((sizeof(lab__segment_t) + 4095) & ~(size_t)4095)

static _Atomic uint8_t *lab__segmap;
static uint32_t lab__cls_slot[LAB__NCLS];
static uint64_t lab__cls_inv[LAB__NCLS];
static uint8_t lab__cls_units[LAB__NCLS];
/* Class of slots up to LAB__CLS_TABLE_MAX bytes, by 16-byte step: every
 * class size is a multiple of 16, so (slot + 15) / 16 decides it. */
#define LAB__CLS_TABLE_MAX 2048
static uint8_t lab__cls_table[LAB__CLS_TABLE_MAX / 16 + 1];
static pthread_mutex_t lab__large_lock = PTHREAD_MUTEX_INITIALIZER;
static lab__large_t *lab__larges;
static lab_site_t lab__check_site = {"heap", "lab_check", "heap check", 0, 0};
static lab_site_t lab__evict_site = {"heap", "quarantine", "quarantine", 0, 0};

/* ---- size classes ---- */

static uint32_t lab__slot_of_cls(unsigned c) {
  if (c < 7) return (c + 2) * 16;
  unsigned j = c - 7, p = 7 + j / 4, k = j % 4 + 1;
  return (1u << p) + k * (1u << (p - 2));
}

static inline unsigned lab__cls_calc(size_t slot) {
  if (slot <= 128) return slot <= 32 ? 0 : (unsigned)((slot + 15) >> 4) - 2;
  unsigned p = 63 - (unsigned)__builtin_clzll(slot - 1);
  size_t step = (size_t)1 << (p - 2);
  unsigned k = (unsigned)((slot - ((size_t)1 << p) + step - 1) >> (p - 2));
  return 7 + (p - 7) * 4 + k - 1;
}

static inline unsigned lab__cls_of(size_t slot) {
  if (LAB__LIKELY(slot <= LAB__CLS_TABLE_MAX))
    return lab__cls_table[(slot + 15) >> 4];
  return lab__cls_calc(slot);
}

int lab__seg_global_init(void) {
  for (unsigned i = 1; i < sizeof lab__cls_table; i++)
    lab__cls_table[i] = (uint8_t)lab__cls_calc((size_t)i * 16);
  for (unsigned c = 0; c < LAB__NCLS; c++) {
    uint32_t s = lab__slot_of_cls(c);
    lab__cls_slot[c] = s;
    lab__cls_inv[c] = (((uint64_t)1 << LAB__INV_SHIFT) + s - 1) / s;
    size_t want = (size_t)s * 8 > LAB__UNIT_SIZE ? (size_t)s * 8 : LAB__UNIT_SIZE;
    lab__cls_units[c] = (uint8_t)((want + LAB__UNIT_SIZE - 1) / LAB__UNIT_SIZE);
  }
  lab__segmap = lab__os_reserve(LAB__SEGMAP_LEN);
  return lab__segmap ? LAB_OK : LAB_ENOMEM;
}

static inline uint8_t lab__segmap_get(uintptr_t a) {
  if (a >> LAB__ADDR_BITS) return LAB__MAP_NONE;
  return atomic_load_explicit(&lab__segmap[a >> LAB__SEG_SHIFT],
                              memory_order_acquire);
}
static inline void lab__segmap_set(uintptr_t a, uint8_t v) {
  atomic_store_explicit(&lab__segmap[a >> LAB__SEG_SHIFT], v,
                        memory_order_release);
}

/* ---- pages ---- */

static void lab__avail_push(lab__heap_t *h, lab__page_t *pg) {
  pg->prev = NULL;
  pg->next = h->avail[pg->cls];
  if (pg->next) pg->next->prev = pg;
  h->avail[pg->cls] = pg;
  pg->in_avail = 1;
}

static void lab__avail_unlink(lab__heap_t *h, lab__page_t *pg) {
  if (!pg->in_avail) return;
  if (pg->prev) pg->prev->next = pg->next;
  else h->avail[pg->cls] = pg->next;
  if (pg->next) pg->next->prev = pg->prev;
  pg->next = pg->prev = NULL;
  pg->in_avail = 0;
}

static lab__segment_t *lab__seg_new(lab__heap_t *h) {
  if (!lab__limit_allows(LAB__SEG_META)) return NULL;
  lab__segment_t *s = lab__os_map_aligned(LAB__SEG_SIZE, LAB__SEG_SIZE);
  if (!s) return NULL;
  s->magic = LAB__SEG_MAGIC;
  s->owner = h;
  s->used_units = 1;
  s->next = h->segs;
  if (s->next) s->next->prev = s;
  h->segs = s;
  atomic_fetch_add(&lab__mapped_bytes, LAB__SEG_META);
  atomic_fetch_add(&lab__meta_bytes, LAB__SEG_META);
  lab__segmap_set((uintptr_t)s, LAB__MAP_SMALL);
  return s;
}

static void lab__seg_delete(lab__heap_t *h, lab__segment_t *s) {
  if (s->prev) s->prev->next = s->next;
  else h->segs = s->next;
  if (s->next) s->next->prev = s->prev;
  lab__segmap_set((uintptr_t)s, LAB__MAP_NONE);
  atomic_fetch_sub(&lab__mapped_bytes, LAB__SEG_META);
  atomic_fetch_sub(&lab__meta_bytes, LAB__SEG_META);
  lab__os_unmap(s, LAB__SEG_SIZE);
}

/* First run of k free units in s, or -1. */
static int lab__seg_find_run(const lab__segment_t *s, unsigned k) {
  uint64_t want = k >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1);
  for (unsigned i = 1; i + k <= LAB__NUNITS; i++)
    if (!(s->used_units & (want << i))) return (int)i;
  return -1;
}

static lab__page_t *lab__page_new(lab__heap_t *h, unsigned cls) {
  unsigned k = lab__cls_units[cls];
  /* Pages count as mapped once carved: the cap applies here. */
  if (!lab__limit_allows((uint64_t)k * LAB__UNIT_SIZE)) return NULL;
  lab__segment_t *s;
  int i = -1;
  for (s = h->segs; s; s = s->next)
    if ((i = lab__seg_find_run(s, k)) >= 0) break;
  if (!s) {
    if (!(s = lab__seg_new(h))) return NULL;
    i = lab__seg_find_run(s, k);
  }
  lab__page_t *pg = &s->pages[i];
  memset(pg, 0, sizeof *pg);
  pg->kind = LAB__UNIT_HEAD;
  pg->cls = (uint8_t)cls;
  pg->units = (uint8_t)k;
  pg->start = (uint8_t *)s + (size_t)i * LAB__UNIT_SIZE;
  pg->slot = lab__cls_slot[cls];
  pg->inv = lab__cls_inv[cls];
  pg->capacity = (uint32_t)((k * LAB__UNIT_SIZE) / pg->slot);
  pg->owner = h;
  for (unsigned j = 1; j < k; j++) {
    s->pages[i + j].kind = LAB__UNIT_TAIL;
    s->pages[i + j].head = (uint8_t)i;
  }
  s->used_units |= (k >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << i;
  atomic_fetch_add(&lab__mapped_bytes, k * LAB__UNIT_SIZE);
  lab__peak_note();
  return pg;
}

static inline lab__segment_t *lab__seg_of(const void *p) {
  return (lab__segment_t *)((uintptr_t)p & ~(uintptr_t)(LAB__SEG_SIZE - 1));
}

/* Give an empty page's run back to the OS and to its segment. */
static void lab__page_release(lab__heap_t *h, lab__page_t *pg) {
  lab__segment_t *s = lab__seg_of(pg->start);
  unsigned i = (unsigned)(pg - s->pages), k = pg->units;
  lab__avail_unlink(h, pg);
  if (h->cur[pg->cls] == pg) h->cur[pg->cls] = NULL;
  lab__os_release(pg->start, k * LAB__UNIT_SIZE);
  atomic_fetch_sub(&lab__mapped_bytes, k * LAB__UNIT_SIZE);
  for (unsigned j = 0; j < k; j++) s->pages[i + j].kind = LAB__UNIT_FREE;
  s->used_units &= ~((k >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << i);
  if (s->used_units == 1) lab__seg_delete(h, s);
}

/* Slot from the page, or NULL if it is full. *fresh says whether it was
 * never used (all zero) rather than recycled (prefilled at eviction). */
static inline lab__hdr_t *lab__page_take(lab__page_t *pg, bool *fresh) {
  lab__hdr_t *b = pg->free;
  if (b) {
    if (lab__vg) VALGRIND_MAKE_MEM_DEFINED(lab__user_of(b), sizeof(void *));
    pg->free = *(lab__hdr_t **)lab__user_of(b);
    pg->used++;
    *fresh = false;
    return b;
  }
  uint32_t c = atomic_load_explicit(&pg->carved, memory_order_relaxed);
  if (c < pg->capacity) {
    atomic_store_explicit(&pg->carved, c + 1, memory_order_relaxed);
    pg->used++;
    *fresh = true;
    return (lab__hdr_t *)(pg->start + (size_t)c * pg->slot);
  }
  return NULL;
}

/* A page that just lost a block and is neither current nor on the avail
 * list: it goes on that list, or among the spares once empty. */
static void lab__page_settle(lab__heap_t *h, lab__page_t *pg) {
  if (pg->used == 0) {
    /* Keep up to LAB__SPARE_BYTES of empty pages per class for reuse, so a
     * class that breathes does not fault pages in and out; give back the
     * rest so RSS falls when a leak is cured. */
    lab__avail_unlink(h, pg);
    size_t bytes = (size_t)pg->units * LAB__UNIT_SIZE;
    if ((h->nspare[pg->cls] + 1) * bytes > LAB__SPARE_BYTES &&
        h->nspare[pg->cls] > 0) {
      lab__page_release(h, pg);
      return;
    }
    pg->next = h->spare[pg->cls];
    h->spare[pg->cls] = pg;
    h->nspare[pg->cls]++;
  } else {
    lab__avail_push(h, pg);
  }
}

/* Owner thread: a freed, checked slot goes back on its page's list. */
static inline void lab__page_put(lab__heap_t *h, lab__page_t *pg,
                                 lab__hdr_t *b) {
  if (lab__vg) VALGRIND_MAKE_MEM_UNDEFINED(lab__user_of(b), sizeof(void *));
  *(lab__hdr_t **)lab__user_of(b) = pg->free;
  pg->free = b;
  pg->used--;
  if (pg == h->cur[pg->cls] || (pg->in_avail && pg->used)) return;
  lab__page_settle(h, pg);
}

static inline lab__page_t *lab__page_of(const void *b) {
  lab__segment_t *s = lab__seg_of(b);
  lab__page_t *pg = &s->pages[((uintptr_t)b - (uintptr_t)s) >> LAB__UNIT_SHIFT];
  if (pg->kind == LAB__UNIT_TAIL) pg = &s->pages[pg->head];
  return pg;
}

/* Collect the blocks other threads gave back. */
static void lab__seg_collect(lab__heap_t *h) {
  lab__hdr_t *b = atomic_exchange_explicit(&h->remote, NULL,
                                           memory_order_acquire);
  while (b) {
    lab__hdr_t *next = *(lab__hdr_t **)lab__user_of(b);
    lab__page_put(h, lab__page_of(b), b);
    b = next;
  }
}

/* ---- large blocks ---- */

static lab__hdr_t *lab__large_alloc(size_t n) {
  size_t page = lab__os_page();
  if (n > SIZE_MAX / 2) return NULL;
  size_t total = (LAB__LARGE_HDR + n + LAB__GUARD_SIZE + page - 1) & ~(page - 1);
  if (!lab__limit_allows(total)) return NULL;
  lab__large_t *l = lab__os_map_aligned(total, LAB__SEG_SIZE);
  if (!l) return NULL;
  l->magic = LAB__LARGE_MAGIC;
  l->map_size = total;
  l->size = n;
  pthread_mutex_lock(&lab__large_lock);
  l->prev = NULL;
  l->next = lab__larges;
  if (l->next) l->next->prev = l;
  lab__larges = l;
  lab__segmap_set((uintptr_t)l, LAB__MAP_LARGE);
  pthread_mutex_unlock(&lab__large_lock);
  atomic_fetch_add(&lab__mapped_bytes, total);
  atomic_fetch_add(&lab__meta_bytes, LAB__LARGE_HDR - LAB__HDR_SIZE);
  return (lab__hdr_t *)((char *)l + LAB__LARGE_HDR - LAB__HDR_SIZE);
}

static void lab__large_free(lab__large_t *l) {
  pthread_mutex_lock(&lab__large_lock);
  if (l->prev) l->prev->next = l->next;
  else lab__larges = l->next;
  if (l->next) l->next->prev = l->prev;
  lab__segmap_set((uintptr_t)l, LAB__MAP_NONE);
  pthread_mutex_unlock(&lab__large_lock);
  atomic_fetch_sub(&lab__mapped_bytes, l->map_size);
  atomic_fetch_sub(&lab__meta_bytes, LAB__LARGE_HDR - LAB__HDR_SIZE);
  lab__os_unmap(l, l->map_size);
}

/* ---- allocation ---- */

static lab__hdr_t *lab__alloc_slow(lab__heap_t *h, unsigned cls, bool *fresh) {
  lab__hdr_t *b;
  lab__page_t *pg;
  if (atomic_load_explicit(&h->remote, memory_order_relaxed)) {
    lab__seg_collect(h);
    if (h->cur[cls] && (b = lab__page_take(h->cur[cls], fresh))) return b;
  }
  while ((pg = h->avail[cls])) {
    lab__avail_unlink(h, pg);
    if ((b = lab__page_take(pg, fresh))) {
      h->cur[cls] = pg;
      return b;
    }
  }
  if ((pg = h->spare[cls])) {
    h->spare[cls] = pg->next;
    h->nspare[cls]--;
    pg->next = NULL;
  } else if (!(pg = lab__page_new(h, cls))) {
    return NULL;
  }
  h->cur[cls] = pg;
  return lab__page_take(pg, fresh);
}

lab__hdr_t *lab__seg_alloc(lab__heap_t *h, size_t n, bool zero) {
  lab__hdr_t *b;
  bool fresh;
  unsigned cls = 0;
  if (LAB__UNLIKELY(n > LAB__SMALL_MAX)) {
    if (!(b = lab__large_alloc(n))) return NULL;
    lab__peak_note();
    fresh = true;
  } else {
    cls = lab__cls_of(n + LAB__BLOCK_OVERHEAD);
    lab__page_t *pg = h->cur[cls];
    if (LAB__LIKELY(pg && (b = pg->free)))
      /* Overlap the misses on the block's first line and its guard line. */
      __builtin_prefetch((char *)b + LAB__HDR_SIZE + n, 1);
    if (!(pg && (b = lab__page_take(pg, &fresh))) &&
        !(b = lab__alloc_slow(h, cls, &fresh)))
      return NULL;
  }
  void *u = lab__user_of(b);
  if (fresh) {
    /* A fresh small slot gets the pattern in all its room (up to the fill
     * limit), not just the n bytes asked for: evictions then refill only
     * what a user could change (lab__evict). */
    size_t room = n > LAB__SMALL_MAX ? n : lab__cls_slot[cls] - LAB__BLOCK_OVERHEAD;
    size_t end = lab__fill_span(room);
    size_t from = zero ? n : 0; /* calloc: the mapping is zero already */
    if (end > from) lab__fill((char *)u + from, end - from, LAB_FILL_ALLOC);
  } else if (zero) {
    memset(u, 0, n);
  } else if (LAB__LIKELY(lab__fill_span(n) >= 8)) {
    /* Prefilled when it left quarantine; only the list link is stale. */
    uint64_t pat = LAB__WORD_OF(LAB_FILL_ALLOC);
    memcpy(u, &pat, sizeof pat);
  } else {
    size_t k = n < 8 ? n : 8;
    memset(u, LAB_FILL_ALLOC, lab__fill_span(k));
  }
  return b;
}

lab__hdr_t *lab__seg_alloc_fast(lab__heap_t *h, size_t n) {
  unsigned cls = lab__cls_of(n + LAB__BLOCK_OVERHEAD);
  lab__page_t *pg = h->cur[cls];
  lab__hdr_t *b;
  if (LAB__UNLIKELY(!pg || !(b = pg->free))) {
    /* The current page is used up: the next one with free slots, as
     * lab__alloc_slow takes it when no other thread gave blocks back. */
    pg = h->avail[cls];
    if (!pg || !(b = pg->free) ||
        atomic_load_explicit(&h->remote, memory_order_relaxed))
      return NULL;
    lab__avail_unlink(h, pg);
    h->cur[cls] = pg;
  }
  /* Overlap the misses on the block's first line and its guard line. */
  __builtin_prefetch((char *)b + LAB__HDR_SIZE + n, 1);
  void *u = lab__user_of(b);
  pg->free = *(lab__hdr_t **)u;
  pg->used++;
  /* Prefilled when it left quarantine; only the list link is stale. No
   * memset for short spans: a call would make this path save registers. */
  size_t span = lab__fill_span(n);
  uint64_t pat = LAB__WORD_OF(LAB_FILL_ALLOC);
  if (LAB__LIKELY(span >= 8)) {
    memcpy(u, &pat, 8);
  } else if (span >= 4) { /* two overlapping words */
    memcpy(u, &pat, 4);
    memcpy((char *)u + span - 4, &pat, 4);
  } else if (span) { /* 1 to 3 bytes: first, middle, last */
    unsigned char *c = u;
    c[0] = c[span / 2] = c[span - 1] = LAB_FILL_ALLOC;
  }
  return b;
}

size_t lab__seg_size(const lab__hdr_t *b) {
  if (LAB__LIKELY(b->size != LAB__SIZE_LARGE)) return b->size;
  return ((const lab__large_t *)((uintptr_t)b + LAB__HDR_SIZE -
                                 LAB__LARGE_HDR))->size;
}

/* ---- validation ---- */

/* Offset of the damaged header byte nearest the block, for a bad canary. */
static long lab__canary_damage(const lab__hdr_t *b) {
  uint32_t want = LAB__CANARY_LIVE, got = lab__canary(b);
  for (int j = 3; j >= 0; j--)
    if (((want >> (8 * j)) & 0xFF) != ((got >> (8 * j)) & 0xFF)) return j - 4;
  return -1;
}

/* Report a header that should be live and is not. */
static void lab__misjudged(lab__hdr_t *b, const void *p,
                           const lab_site_t *site, lab__use_t use) {
  uint32_t c = lab__canary_acquire(b); /* then slot is the freer's */
  if (c == LAB__CANARY_QUAR || c == LAB__CANARY_FREE)
    lab__report(lab__freed_fault(use), b->site, (uint16_t)b->slot,
                lab__seg_size(b), p, site, 0);
  else
    lab__report(LAB_FAULT_overflow, b->site, 0, 0, p, site,
                lab__canary_damage(b));
}

/* Judge a header that should be live; NULL after reporting if not. */
static inline lab__hdr_t *lab__judge(lab__hdr_t *b, const void *p,
                                     const lab_site_t *site, lab__use_t use) {
  if (LAB__LIKELY(lab__canary(b) == LAB__CANARY_LIVE)) return b;
  if (use != LAB__USE_QUERY) lab__misjudged(b, p, site, use);
  return NULL;
}

lab__hdr_t *lab__seg_validate(const void *p, const lab_site_t *site,
                              lab__use_t use) {
  uintptr_t a = (uintptr_t)p;
  uint8_t kind = lab__segmap_get(a);
  if (LAB__LIKELY(kind == LAB__MAP_SMALL)) {
    lab__page_t *pg = lab__page_of(p);
    if (pg->kind != LAB__UNIT_HEAD) goto invalid;
    uintptr_t first = (uintptr_t)pg->start + LAB__HDR_SIZE;
    if (a < first) goto invalid;
    uint64_t off = a - first;
    uint64_t idx = (off * pg->inv) >> LAB__INV_SHIFT;
    if (idx >= atomic_load_explicit(&pg->carved, memory_order_relaxed))
      goto invalid;
    /* A valid p is the block's user pointer, so the header and guard loads
     * below take their addresses from p, not from this arithmetic: they
     * start while the checks run. The guard sits in the slot's last
     * quarter: fetch that with the header. */
    __builtin_prefetch((const char *)p - LAB__HDR_SIZE + pg->slot -
                       LAB__GUARD_SIZE - 1);
    if (LAB__UNLIKELY(idx * pg->slot != off)) {
      lab__hdr_t *b = (lab__hdr_t *)(pg->start + idx * pg->slot);
      /* Interior pointer: name the block it points into, if live. */
      bool live = lab__canary(b) == LAB__CANARY_LIVE;
      if (use != LAB__USE_QUERY)
        lab__report(LAB_FAULT_invalid_free, live ? b->site : 0, 0,
                    live ? b->size : 0, p, site,
                    (long)(a - (uintptr_t)lab__user_of(b)));
      return NULL;
    }
    return lab__judge(lab__hdr_of(p), p, site, use);
  }
  if (kind == LAB__MAP_LARGE) {
    lab__large_t *l = (lab__large_t *)(a & ~(uintptr_t)(LAB__SEG_SIZE - 1));
    lab__hdr_t *b = (lab__hdr_t *)((char *)l + LAB__LARGE_HDR - LAB__HDR_SIZE);
    if (a != (uintptr_t)lab__user_of(b)) {
      if (use != LAB__USE_QUERY)
        lab__report(LAB_FAULT_invalid_free, b->site, 0, l->size, p, site,
                    (long)(a - (uintptr_t)lab__user_of(b)));
      return NULL;
    }
    return lab__judge(b, p, site, use);
  }
invalid:
  if (use != LAB__USE_QUERY)
    lab__report(LAB_FAULT_invalid_free, 0, 0, 0, p, site, 0);
  return NULL;
}

/* ---- free, quarantine ---- */

/* Check a block leaving quarantine and hand it back to its page. */
static void lab__evict(lab__heap_t *h, lab__hdr_t *b) {
  if (lab__canary(b) != LAB__CANARY_QUAR) {
    /* The header was written after free: keep the slot out of use. */
    lab__report(LAB_FAULT_use_after_free, 0, 0, 0, lab__user_of(b),
                &lab__evict_site, -1);
    return;
  }
  size_t n = b->size;
  void *u = lab__user_of(b);
  lab__page_t *pg = lab__page_of(b);
  size_t room = pg->slot - LAB__BLOCK_OVERHEAD;
  if (lab__vg) VALGRIND_MAKE_MEM_DEFINED(u, room);
  /* Check the poison and prefill for the next user while the lines are
   * hot. Only the block and its guard can differ from the pattern: the
   * rest of the room was filled when the slot was fresh and nobody wrote
   * there since (a write that far past the end is an overflow the guard
   * did not see). */
  size_t checked = lab__fill_span(n);
  size_t dirty = lab__fill_span(n + LAB__GUARD_SIZE < room ? n + LAB__GUARD_SIZE
                                                           : room);
  long bad = lab__fill_swap(u, checked, LAB_FILL_FREE, LAB_FILL_ALLOC);
  if (LAB__UNLIKELY(bad >= 0)) {
    lab__report(LAB_FAULT_use_after_free, b->site, (uint16_t)b->slot, n, u,
                &lab__evict_site, bad);
    memset(u, LAB_FILL_ALLOC, checked);
  }
  if (dirty > checked) /* the guard, or part of it */
    memset((char *)u + checked, LAB_FILL_ALLOC, dirty - checked);
  lab__canary_set(b, LAB__CANARY_FREE);
  lab__heap_t *o = pg->owner;
  if (o == h) {
    lab__page_put(h, pg, b);
    return;
  }
  lab__hdr_t *head = atomic_load_explicit(&o->remote, memory_order_relaxed);
  do {
    *(lab__hdr_t **)u = head;
  } while (!atomic_compare_exchange_weak_explicit(
      &o->remote, &head, b, memory_order_release, memory_order_relaxed));
}

static void lab__evict_oldest(lab__heap_t *h) {
  lab__hdr_t *b = h->q[h->qhead];
  h->qhead = (h->qhead + 1) & (h->qcap - 1);
  h->qn--;
  LAB__BUMP(h->ctr.quarantine_bytes, -(uint64_t)b->size);
  lab__evict(h, b);
}

void lab__seg_free(lab__heap_t *h, lab__hdr_t *b, size_t size) {
  void *u = lab__user_of(b);
  long bad = lab__guard_check(u, size);
  if (LAB__UNLIKELY(bad >= 0)) /* seen by the free: b->slot is its site */
    lab__report(LAB_FAULT_overflow, b->site, 0, size, u,
                lab__site_at((uint16_t)b->slot), (long)size + bad);
  if (LAB__UNLIKELY(size > LAB__SMALL_MAX)) {
    lab__canary_set(b, LAB__CANARY_FREE);
    if (lab__vg) VALGRIND_FREELIKE_BLOCK(u, 0);
    lab__large_free((lab__large_t *)((char *)b + LAB__HDR_SIZE -
                                     LAB__LARGE_HDR));
    return;
  }
  lab__fill(u, lab__fill_span(size), LAB_FILL_FREE);
  lab__canary_set(b, LAB__CANARY_QUAR);
  if (lab__vg) VALGRIND_FREELIKE_BLOCK(u, 0);
  while (h->qn && (h->qn == h->qcap ||
                   LAB__READ(h->ctr.quarantine_bytes) + size > h->qmax))
    lab__evict_oldest(h);
  if (size > h->qmax) {
    lab__evict(h, b);
    return;
  }
  h->q[(h->qhead + h->qn) & (h->qcap - 1)] = b;
  h->qn++;
  LAB__BUMP(h->ctr.quarantine_bytes, size);
}

lab__hdr_t *lab__seg_free_fast(lab__heap_t *h, void *p, uint16_t free_site,
                              lab__hdr_t **valid) {
  /* lab__seg_validate's checks for a small block, then lab__unscope's,
   * lab__seg_free's and the eviction's; nothing is written before all
   * have passed. */
  uintptr_t a = (uintptr_t)p;
  if (LAB__UNLIKELY(lab__segmap_get(a) != LAB__MAP_SMALL)) return NULL;
  lab__page_t *pg = lab__page_of(p);
  uintptr_t first = (uintptr_t)pg->start + LAB__HDR_SIZE;
  if (LAB__UNLIKELY(pg->kind != LAB__UNIT_HEAD || a < first)) return NULL;
  uint64_t off = a - first;
  uint64_t idx = (off * pg->inv) >> LAB__INV_SHIFT;
  if (LAB__UNLIKELY(idx >= atomic_load_explicit(&pg->carved,
                                                memory_order_relaxed)))
    return NULL;
  __builtin_prefetch((const char *)p - LAB__HDR_SIZE + pg->slot -
                     LAB__GUARD_SIZE - 1);
  if (LAB__UNLIKELY(idx * pg->slot != off)) return NULL;
  lab__hdr_t *b = lab__hdr_of(p);
  if (LAB__UNLIKELY(lab__canary(b) != LAB__CANARY_LIVE)) return NULL;
  *valid = b; /* what lab__seg_validate would return */
  if (LAB__UNLIKELY(atomic_load_explicit(&b->scope, memory_order_relaxed)))
    return NULL;
  size_t n = b->size;
  if (LAB__UNLIKELY(n > pg->slot - LAB__BLOCK_OVERHEAD)) return NULL;
  if (LAB__UNLIKELY(lab__guard_check(p, n) >= 0)) return NULL;
  size_t lim = lab__cfg.fill_limit;
  uint64_t held = LAB__READ(h->ctr.quarantine_bytes);
  lab__hdr_t *v = NULL;
  lab__page_t *vpg = NULL;
  size_t vn = 0;
  if (h->qn == h->qcap) { /* the oldest leaves: lab__evict's checks */
    v = h->q[h->qhead];
    if (LAB__UNLIKELY(lab__canary(v) != LAB__CANARY_QUAR)) return NULL;
    vn = v->size;
    vpg = lab__page_of(v);
    /* Only the page's owner puts a slot back, and only to a page that
     * keeps a block (one that empties is lab__page_settle's). */
    if (LAB__UNLIKELY(vpg->owner != h || vpg->used < 2)) return NULL;
    held -= vn;
  }
  if (LAB__UNLIKELY(held + n > h->qmax)) return NULL;
  if (v) {
    /* Checks the poison and, only if it is intact, prefills the slot for
     * its next user; a finding leaves it as it was for lab__evict. */
    void *vu = lab__user_of(v);
    size_t checked = vn < lim ? vn : lim;
    if (LAB__UNLIKELY(lab__fill_swap(vu, checked, LAB_FILL_FREE,
                                     LAB_FILL_ALLOC) >= 0))
      return NULL;
    size_t room = vpg->slot - LAB__BLOCK_OVERHEAD;
    size_t end = vn + LAB__GUARD_SIZE < room ? vn + LAB__GUARD_SIZE : room;
    size_t dirty = end < lim ? end : lim;
    if (dirty > checked) /* the guard, or part of it */
      memset((char *)vu + checked, LAB_FILL_ALLOC, dirty - checked);
    lab__canary_set(v, LAB__CANARY_FREE);
    h->qhead = (h->qhead + 1) & (h->qcap - 1);
    h->qn--;
    *(lab__hdr_t **)vu = vpg->free;
    vpg->free = v;
    vpg->used--;
    if (vpg != h->cur[vpg->cls] && !vpg->in_avail) lab__avail_push(h, vpg);
  }
  b->slot = free_site;
  lab__fill(p, n < lim ? n : lim, LAB_FILL_FREE);
  lab__canary_set(b, LAB__CANARY_QUAR);
  h->q[(h->qhead + h->qn) & (h->qcap - 1)] = b;
  h->qn++;
  atomic_store_explicit(&h->ctr.quarantine_bytes, held + n,
                        memory_order_relaxed);
  return b;
}

void lab__seg_flush(lab__heap_t *h) {
  while (h->qn) lab__evict_oldest(h);
  lab__seg_collect(h);
}

void lab__seg_trim(lab__heap_t *h) {
  lab__seg_collect(h);
  for (unsigned c = 0; c < LAB__NCLS; c++) {
    lab__page_t *pg = h->cur[c];
    if (pg && pg->used == 0) {
      h->cur[c] = NULL;
      lab__page_release(h, pg);
    }
    while ((pg = h->spare[c])) {
      h->spare[c] = pg->next;
      h->nspare[c]--;
      pg->next = NULL;
      lab__page_release(h, pg);
    }
  }
}

/* ---- whole-heap check ---- */

/* What lab_check may read without racing a writer: the guard of a live
 * block, and the poison of a block in the quarantine of the heap being
 * checked (its holder alone evicts it). Not the poison of a block that
 * another thread's quarantine holds: that thread's eviction rewrites it
 * while we read (checking those reported thousands of false writes after
 * free); it checks the block itself when it evicts it. */

/* A block of the heap being checked, or a large block: the guard of a
 * live one. Only the owning heap's allocations (or a new mapping) make a
 * slot live, and none run during the check, so a block that still reads
 * live after its guard was read was live throughout: a finding on a block
 * another thread freed meanwhile is dropped. */
static size_t lab__check_slot(lab__hdr_t *b, size_t max) {
  void *u = lab__user_of(b);
  switch (lab__canary(b)) {
  case LAB__CANARY_LIVE: {
    size_t n = lab__seg_size(b);
    if (n > max) break; /* header damaged */
    long bad = lab__guard_check(u, n);
    if (bad < 0) return 0;
    atomic_thread_fence(memory_order_acquire); /* the guard read first */
    if (lab__canary(b) != LAB__CANARY_LIVE) return 0;
    lab__report(LAB_FAULT_overflow, b->site, 0, n, u, &lab__check_site,
                (long)n + bad);
    return 1;
  }
  case LAB__CANARY_QUAR: /* checked by the quarantine that holds it */
  case LAB__CANARY_FREE:
    return 0;
  }
  lab__report(LAB_FAULT_overflow, 0, 0, 0, u, &lab__check_site,
              lab__canary_damage(b));
  return 1;
}

/* A block in the checked heap's quarantine, on any heap's page: its
 * poison, as its eviction will check it. */
static size_t lab__check_quarantined(lab__hdr_t *b) {
  void *u = lab__user_of(b);
  size_t n = b->size;
  if (lab__canary(b) != LAB__CANARY_QUAR ||
      n > lab__page_of(b)->slot - LAB__BLOCK_OVERHEAD) {
    /* The header was written after free. */
    lab__report(LAB_FAULT_use_after_free, 0, 0, 0, u, &lab__check_site, -1);
    return 1;
  }
  if (lab__vg) VALGRIND_MAKE_MEM_DEFINED(u, n);
  long bad = lab__fill_check(u, lab__fill_span(n), LAB_FILL_FREE);
  if (lab__vg) VALGRIND_MAKE_MEM_NOACCESS(u, n);
  if (bad < 0) return 0;
  lab__report(LAB_FAULT_use_after_free, b->site, (uint16_t)b->slot, n, u,
              &lab__check_site, bad);
  return 1;
}

size_t lab__seg_check(lab__heap_t *h) {
  size_t found = 0;
  for (lab__segment_t *s = h->segs; s; s = s->next) {
    for (unsigned i = 1; i < LAB__NUNITS; i++) {
      lab__page_t *pg = &s->pages[i];
      if (pg->kind != LAB__UNIT_HEAD) continue;
      uint32_t carved = atomic_load_explicit(&pg->carved, memory_order_relaxed);
      for (uint32_t k = 0; k < carved; k++)
        found += lab__check_slot((lab__hdr_t *)(pg->start + (size_t)k * pg->slot),
                                 pg->slot - LAB__BLOCK_OVERHEAD);
    }
  }
  for (uint32_t i = 0; i < h->qn; i++)
    found += lab__check_quarantined(h->q[(h->qhead + i) & (h->qcap - 1)]);
  return found;
}

size_t lab__seg_check_large(void) {
  size_t found = 0;
  pthread_mutex_lock(&lab__large_lock);
  for (lab__large_t *l = lab__larges; l; l = l->next)
    found += lab__check_slot(
        (lab__hdr_t *)((char *)l + LAB__LARGE_HDR - LAB__HDR_SIZE), l->size);
  pthread_mutex_unlock(&lab__large_lock);
  return found;
}

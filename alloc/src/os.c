/* os.c - the heap's only contact with the kernel: mmap, munmap, madvise.
 * Also where allocation-failure tests inject their failures.
 *
 * Under memcheck the heap's memory, its blocks' segments and its own
 * structures alike, comes from memcheck's malloc instead. Memcheck's leak
 * search takes every writable mapping as a root and scans all of it, so
 * in a mapping the words of a lost block keep the blocks they point to
 * reachable (a leaked cJSON tree came out as its root lost and its nodes
 * reachable), and so do the heap's own records (a closed scope's array
 * still names the blocks it held). Memcheck's malloc arena is no root, as
 * glibc's heap is none under memcheck: only what reached blocks point to
 * is followed. Each region's malloc block also holds a small MALLOCLIKE
 * block, its anchor: memcheck leaves a malloc block that holds MALLOCLIKE
 * blocks out of the search (its rule for custom allocators on top of
 * malloc), so the region itself is never a block that is reached and
 * scanned either.
 *
 * Not valgrind's mempool requests: a metapool's chunk (a segment, its
 * blocks MALLOCLIKE inside) is a block of its own to the leak search. The
 * heap points into every segment, so the chunk is reached and all of it
 * scanned, lost blocks' words included, and their children are reachable
 * again; and the segment's mapping stays a root besides. (Measured, 3.19:
 * ten lost 3-block chains in an mmapped segment gave 10 blocks definitely
 * lost and 20 reachable, plain or as an auto-free metapool's chunk, which
 * adds the 4 MiB segment as a reachable block; from memcheck's malloc, 10
 * lost and 20 indirectly lost.) */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "vg.h"

_Atomic uint64_t lab__os_maps;
static _Atomic uint64_t lab__os_fail_at;  /* request number to fail, 0: none */
static _Atomic uint64_t lab__os_failures; /* injected failures so far */

void lab_debug_fail_os_at(uint64_t n) {
  uint64_t now = atomic_load(&lab__os_maps);
  atomic_store(&lab__os_fail_at, n ? now + n : 0);
}

uint64_t lab_debug_os_failures(void) { return atomic_load(&lab__os_failures); }

/* Count one request; true if this one must fail by injection. */
bool lab__os_inject(void) {
  uint64_t req = atomic_fetch_add(&lab__os_maps, 1) + 1;
  uint64_t target = atomic_load_explicit(&lab__os_fail_at, memory_order_relaxed);
  if (LAB__UNLIKELY(target && req == target)) {
    atomic_fetch_add(&lab__os_failures, 1);
    return true;
  }
  return false;
}

size_t lab__os_page(void) {
  static _Atomic size_t page;
  size_t p = atomic_load_explicit(&page, memory_order_relaxed);
  if (!p) {
    p = (size_t)sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&page, p, memory_order_relaxed);
  }
  return p;
}

/* Under memcheck, the anchor of one region: a MALLOCLIKE block right after
 * it. Anchors are linked from a static root, so memcheck finds each one
 * reachable (through the list, not through the heap's hidden structures
 * that point to the region) and reports none as lost. */
typedef struct lab__vg_anchor {
  struct lab__vg_anchor *next, *prev;
} lab__vg_anchor_t;

static lab__vg_anchor_t lab__vg_anchors = {&lab__vg_anchors, &lab__vg_anchors};
static pthread_mutex_t lab__vg_lock = PTHREAD_MUTEX_INITIALIZER;

static inline lab__vg_anchor_t *lab__vg_anchor_of(void *p, size_t n) {
  return (lab__vg_anchor_t *)((char *)p + ((n + 15) & ~(size_t)15));
}

/* n zeroed bytes aligned to `align` from memcheck's malloc, anchored. */
static void *lab__vg_map(size_t n, size_t align) {
  void *p;
  size_t total = ((n + 15) & ~(size_t)15) + sizeof(lab__vg_anchor_t);
  if (total < n || posix_memalign(&p, align, total)) return NULL;
  memset(p, 0, n); /* as a fresh mapping reads */
  lab__vg_anchor_t *a = lab__vg_anchor_of(p, n);
  VALGRIND_MALLOCLIKE_BLOCK(a, sizeof *a, 0, 0);
  pthread_mutex_lock(&lab__vg_lock);
  a->prev = &lab__vg_anchors;
  a->next = lab__vg_anchors.next;
  a->next->prev = a;
  lab__vg_anchors.next = a;
  pthread_mutex_unlock(&lab__vg_lock);
  return p;
}

static void lab__vg_unmap(void *p, size_t n) {
  lab__vg_anchor_t *a = lab__vg_anchor_of(p, n);
  pthread_mutex_lock(&lab__vg_lock);
  a->prev->next = a->next;
  a->next->prev = a->prev;
  pthread_mutex_unlock(&lab__vg_lock);
  VALGRIND_FREELIKE_BLOCK(a, 0);
  free(p);
}

void *lab__os_map(size_t n) {
  if (lab__os_inject()) return NULL;
  if (LAB__UNLIKELY(lab__vg)) return lab__vg_map(n, lab__os_page());
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *lab__os_map_aligned(size_t n, size_t align) {
  if (lab__os_inject()) return NULL;
  size_t over = n + align;
  if (over < n) return NULL;
  if (LAB__UNLIKELY(lab__vg)) return lab__vg_map(n, align);
  char *p = mmap(NULL, over, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  uintptr_t start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
  size_t head = start - (uintptr_t)p;
  size_t tail = over - head - n;
  if (head) munmap(p, head);
  if (tail) munmap((char *)start + n, tail);
  return (void *)start;
}

void lab__os_unmap(void *p, size_t n) {
  if (!p) return;
  if (LAB__UNLIKELY(lab__vg)) lab__vg_unmap(p, n);
  else munmap(p, n);
}

/* Under memcheck p is inside a block of its malloc: private anonymous
 * memory all the same, whose pages read as zero after this. */
void lab__os_release(void *p, size_t n) { madvise(p, n, MADV_DONTNEED); }

/* A mapping even under memcheck: the segment map holds bytes, no
 * pointers, and most of it is never touched. */
void *lab__os_reserve(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

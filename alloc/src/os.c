/* os.c - the heap's only contact with the kernel: mmap, munmap, madvise.
 * Also where allocation-failure tests inject their failures. */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

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

void *lab__os_map(size_t n) {
  if (lab__os_inject()) return NULL;
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *lab__os_map_aligned(size_t n, size_t align) {
  if (lab__os_inject()) return NULL;
  size_t over = n + align;
  if (over < n) return NULL;
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
  if (p) munmap(p, n);
}

void lab__os_release(void *p, size_t n) { madvise(p, n, MADV_DONTNEED); }

void *lab__os_reserve(size_t n) {
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

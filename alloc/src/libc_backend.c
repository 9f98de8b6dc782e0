/* libc_backend.c - the comparison backend: blocks from malloc with the same
 * header, guard and accounting as the lab heap. Bad frees are judged from
 * the header alone, which libc may already have reused: best effort. */
#include <malloc.h>
#include <stdlib.h>

#include "internal.h"

lab__hdr_t *lab__libc_alloc(size_t n, bool zero) {
  if (lab__os_inject()) return NULL;
  size_t total;
  if (__builtin_add_overflow(n, LAB__BLOCK_OVERHEAD, &total)) return NULL;
  /* The cap counts the live bytes this backend holds of malloc (a sum
   * over the thread heaps, read only when there is a cap). */
  uint64_t cap = atomic_load_explicit(&lab__limit, memory_order_relaxed);
  if (LAB__UNLIKELY(cap) && lab_live_bytes() + total > cap + lab__tls_reserve) return NULL;
  /* malloc's 16-byte alignment keeps the user pointer 16-aligned. */
  lab__hdr_t *b = malloc(total);
  if (b)
    memset(lab__user_of(b), zero ? 0 : LAB_FILL_ALLOC,
           zero ? n : lab__fill_span(n));
  return b;
}

lab__hdr_t *lab__libc_validate(const void *p, const lab_site_t *site,
                               lab__use_t use) {
  if ((uintptr_t)p & 15) goto invalid;
  lab__hdr_t *h = lab__hdr_of(p);
  uint32_t c = lab__canary(h);
  if (c == LAB__CANARY_LIVE) return h;
  if (use != LAB__USE_QUERY && c == LAB__CANARY_FREE) {
    lab__report(lab__freed_fault(use), h->site, (uint16_t)h->slot, h->size, p,
                site, 0);
    return NULL;
  }
invalid:
  if (use != LAB__USE_QUERY) lab__report(LAB_FAULT_invalid_free, 0, 0, 0, p, site, 0);
  return NULL;
}

void lab__libc_free(lab__hdr_t *h, size_t size) {
  void *u = lab__user_of(h);
  long bad = lab__guard_check(u, size);
  if (bad >= 0) /* seen by the free: h->slot is its site */
    lab__report(LAB_FAULT_overflow, h->site, 0, size, u,
                lab__site_at((uint16_t)h->slot), (long)size + bad);
  memset(u, LAB_FILL_FREE, lab__fill_span(size));
  lab__canary_set(h, LAB__CANARY_FREE);
  free(h);
}

uint64_t lab__libc_mapped(void) {
  struct mallinfo2 mi = mallinfo2();
  return (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
}

/* mem.c - the lab heap, or the C library's beside it. */
#include "core/mem.h"

#include <stdlib.h>

void *srv_mem_alloc(size_t n, const lab_site_t *site) {
  return site ? lab_try_malloc_at(n, site) : malloc(n ? n : 1);
}

void *srv_mem_calloc(size_t count, size_t size, const lab_site_t *site) {
  return site ? lab_try_calloc_at(count, size, site)
              : calloc(count ? count : 1, size ? size : 1);
}

void *srv_mem_realloc(void *p, size_t n, const lab_site_t *site) {
  return site ? lab_try_realloc_at(p, n, site) : realloc(p, n ? n : 1);
}

void srv_mem_free(void *p, const lab_site_t *site) {
  if (site) lab_free_at(p, site);
  else free(p);
}

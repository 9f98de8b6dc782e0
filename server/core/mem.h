/* mem.h - memory charged to a call site of the lab heap, or, with the
 * site SRV_MEM_OUTSIDE, outside it: the observer's own working memory and
 * answers come from the C library's heap, so that reading the heap never
 * changes what it reads (live bytes, the budget, the sites' figures).
 * Every function here may fail (NULL), as the lab heap's try family. */
#ifndef SRV_MEM_H
#define SRV_MEM_H

#include <stddef.h>

#include <lab/alloc.h>

/* The "site" of memory that is not the watched heap's. */
#define SRV_MEM_OUTSIDE ((const lab_site_t *)0)

/* n bytes, uninitialised; NULL when out of memory. */
void *srv_mem_alloc(size_t n, const lab_site_t *site);
/* count * size zeroed bytes (the product checked); NULL on failure. */
void *srv_mem_calloc(size_t count, size_t size, const lab_site_t *site);
/* p resized to n bytes (p NULL: a new block); NULL on failure, p kept. */
void *srv_mem_realloc(void *p, size_t n, const lab_site_t *site);
/* Free p (NULL: nothing), which came from the same site's side. */
void srv_mem_free(void *p, const lab_site_t *site);

#endif /* SRV_MEM_H */

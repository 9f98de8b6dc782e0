/* sites.h - the heap's call sites as the observer reports them: one name
 * per site (its label, else file:line), and the heap's per-site counters
 * merged by that name, since a name may label several call sites
 * ("hello.free" frees in two places). */
#ifndef SRV_SITES_H
#define SRV_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "core/json.h"
#include "http/router.h"

#define SRV_NAME_MAX 48 /* site names, NUL included */

/* One site name with its counters summed over the sites that carry it. */
typedef struct srv_site_row {
  char name[SRV_NAME_MAX];  /* the report name */
  const lab_site_t *site;   /* the first heap site of that name */
  srv_route_t route;        /* the route the name belongs to, or
                               SRV_ROUTE_OTHER */
#define SRV__SITE_ROW_FIELD(name, kind, metric, help) uint64_t name;
  LAB_SITE_STAT_FIELDS(SRV__SITE_ROW_FIELD)
#undef SRV__SITE_ROW_FIELD
  uint64_t errors[LAB_FAULT_COUNT]; /* faults charged to the name */
} srv_site_row_t;

/* A site's report name: its name, else "file:line" (basename); "" for
 * NULL. */
void srv_sites_name(const lab_site_t *site, char *out, size_t cap);
/* The basename of a site's file ("" for none). */
const char *srv_sites_file(const lab_site_t *site);
/* The last part of a path ("echo.c" for "server/app/echo.c"). */
const char *srv_sites_basename(const char *path);
/* Every site merged by name, in the order first seen, into a block
 * outside the lab heap (core/mem.h) that the caller frees (srv_mem_free
 * with SRV_MEM_OUTSIDE); *n rows. With live_only, names with no live
 * block are left out. NULL (and *n 0) when out of memory. */
srv_site_row_t *srv_sites_merge(bool live_only, size_t *n);

/* Write the nonzero fault counts as the JSON object `key` ({"double_free":
 * 2, ...}). */
void srv_sites_errors_json(srv_json_t *j, const char *key,
                           const uint64_t errors[LAB_FAULT_COUNT]);

#endif /* SRV_SITES_H */

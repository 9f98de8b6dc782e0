/* stacks.h - the heap's call stacks as the observer reports them: rows
 * of the heap's stack table with their site's report name and route,
 * frames symbolized (function, file, line, module; inlined calls as
 * frames of their own), and GET /api/stacks. */
#ifndef SRV_STACKS_H
#define SRV_STACKS_H

#include <stdbool.h>
#include <stddef.h>

#include <lab/alloc.h>

#include "core/json.h"
#include "http/http.h"
#include "observe/sites.h"
#include "observe/symbols.h"

/* One stack of the heap with its site's name and route. */
typedef struct srv_stack_row {
  lab_stack_stats_t s;      /* the heap's counters and frames */
  char site[SRV_NAME_MAX];  /* the site's report name (srv_sites_name) */
  srv_route_t route;        /* the route of that name, or SRV_ROUTE_OTHER */
} srv_stack_row_t;

/* How srv_stacks_collect orders its rows. */
typedef enum srv_stacks_order {
  SRV_STACKS_BY_LIVE,   /* live bytes, most first; stacks with none left out */
  SRV_STACKS_BY_ALLOCS, /* bytes allocated since start, most first */
  SRV_STACKS_BY_ID      /* every stack, by id (for lookups by id) */
} srv_stacks_order_t;

/* The heap's stacks into a block outside the lab heap (core/mem.h) that
 * the caller frees (srv_mem_free with SRV_MEM_OUTSIDE); *n rows: every
 * stack by id (SRV_STACKS_BY_ID), or the `top` first in the order (0:
 * all). The table is read in pieces, so the memory a listing takes grows
 * with the rows it returns, not with the table. *total (may be NULL): the
 * stacks that matched, kept or not. NULL (and *n 0) when out of memory. */
srv_stack_row_t *srv_stacks_collect(srv_stacks_order_t order, size_t top, size_t *n,
                                    size_t *total);
/* Write a stack's frames as the JSON array `key`, innermost first: each
 * frame {function, file, line, module, address, inlined}; a stack of
 * depth 0 is its site alone, one frame. */
void srv_stacks_frames_json(srv_json_t *j, const char *key, const srv_stack_row_t *row);
/* The symbolizer of this process, opened on first use; NULL if libdw
 * would not open one. */
srv_symbols_t *srv_stacks_symbols(void);
/* GET /api/stacks?top=N&order=live|allocs: the top stacks with frames. */
void srv_stacks_handle(srv_req_t *rq);

#endif /* SRV_STACKS_H */

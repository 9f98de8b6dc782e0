/* stacks.c - the heap's stack table, named, symbolized and served. */
#include "observe/stacks.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/mem.h"
#include "observe/symbols.h"

/* ---- the symbolizer of this process, opened on first use ---- */

static pthread_once_t srv__sym_once = PTHREAD_ONCE_INIT;
static srv_symbols_t *srv__sym;

static void srv__sym_open(void) {
  if (srv_symbols_open(0, &srv__sym) < 0) srv__sym = NULL;
}

srv_symbols_t *srv_stacks_symbols(void) {
  pthread_once(&srv__sym_once, srv__sym_open);
  return srv__sym;
}

/* ---- rows ---- */

/* Most first, ties by id. */
static int srv__most_first(uint64_t u, uint64_t v, const srv_stack_row_t *x,
                           const srv_stack_row_t *y) {
  if (u != v) return u < v ? 1 : -1;
  return x->s.id < y->s.id ? -1 : x->s.id > y->s.id;
}
static int srv__by_live(const void *a, const void *b) {
  const srv_stack_row_t *x = a, *y = b;
  return srv__most_first(x->s.live_bytes, y->s.live_bytes, x, y);
}
static int srv__by_allocs(const void *a, const void *b) {
  const srv_stack_row_t *x = a, *y = b;
  return srv__most_first(x->s.total_bytes, y->s.total_bytes, x, y);
}

/* Whether row x ranks after y in this order. */
static bool srv__after(srv_stacks_order_t order, const srv_stack_row_t *x,
                       const srv_stack_row_t *y) {
  return (order == SRV_STACKS_BY_LIVE ? srv__by_live(x, y) : srv__by_allocs(x, y)) > 0;
}

/* Keep the `top` first rows as a heap whose root ranks last. */
static void srv__sift_down(srv_stacks_order_t order, srv_stack_row_t *h, size_t m, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < m && srv__after(order, &h[l], &h[w])) w = l;
    if (r < m && srv__after(order, &h[r], &h[w])) w = r;
    if (w == i) return;
    srv_stack_row_t t = h[i];
    h[i] = h[w];
    h[w] = t;
    i = w;
  }
}

static void srv__sift_up(srv_stacks_order_t order, srv_stack_row_t *h, size_t i) {
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!srv__after(order, &h[i], &h[up])) return;
    srv_stack_row_t t = h[i];
    h[i] = h[up];
    h[up] = t;
    i = up;
  }
}

#define SRV__PIECE 64 /* stacks read from the heap at a time */

srv_stack_row_t *srv_stacks_collect(srv_stacks_order_t order, size_t top, size_t *n,
                                    size_t *total) {
  const lab_site_t *site = SRV_MEM_OUTSIDE;
  *n = 0;
  if (total) *total = 0;
  if (order == SRV_STACKS_BY_ID || !top) top = SIZE_MAX;
  lab_stack_stats_t *piece = srv_mem_calloc(SRV__PIECE, sizeof *piece, site);
  size_t cap = 0, m = 0, matched = 0;
  srv_stack_row_t *rows = NULL;
  if (!piece) return NULL;
  uint32_t cursor = 0;
  size_t got;
  while ((got = lab_stack_stats_next(&cursor, piece, SRV__PIECE)) > 0) {
    for (size_t i = 0; i < got; i++) {
      const lab_stack_stats_t *st = &piece[i];
      if (!st->site) continue;
      if (order == SRV_STACKS_BY_LIVE && !st->live_blocks) continue;
      srv_route_t r = srv_route_of_site(st->site->name);
      matched++;
      srv_stack_row_t row = {.s = *st, .route = r};
      if (m == top) {
        /* Full: only a row that ranks before the last kept one enters. */
        if (!srv__after(order, &rows[0], &row)) continue;
        srv_sites_name(st->site, row.site, sizeof row.site);
        rows[0] = row;
        srv__sift_down(order, rows, m, 0);
        continue;
      }
      if (m == cap) {
        size_t want = cap ? 2 * cap : 256;
        if (want > top) want = top;
        srv_stack_row_t *more = srv_mem_realloc(rows, want * sizeof *rows, site);
        if (!more) {
          srv_mem_free(rows, site);
          srv_mem_free(piece, site);
          return NULL;
        }
        rows = more;
        cap = want;
      }
      srv_sites_name(st->site, row.site, sizeof row.site);
      rows[m++] = row;
      if (order != SRV_STACKS_BY_ID) srv__sift_up(order, rows, m - 1);
    }
  }
  srv_mem_free(piece, site);
  if (!rows) rows = srv_mem_calloc(1, sizeof *rows, site);
  if (!rows) return NULL;
  /* lab_stack_stats_next answers in id order already. */
  if (order != SRV_STACKS_BY_ID)
    qsort(rows, m, sizeof *rows, order == SRV_STACKS_BY_LIVE ? srv__by_live : srv__by_allocs);
  *n = m;
  if (total) *total = matched;
  return rows;
}

/* ---- frames ---- */

/* One frame; a NULL function is named by its address. */
static void srv__frame_json(srv_json_t *j, const char *function, const char *file,
                            int line, const char *module, uintptr_t addr,
                            bool inlined, const char *label) {
  srv_json_obj(j, NULL);
  char hex[24];
  snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)addr);
  srv_json_str(j, "function", function ? function : hex);
  srv_json_str(j, "file", srv_sites_basename(file));
  srv_json_i64(j, "line", line);
  srv_json_str(j, "module", module);
  if (addr) {
    srv_json_str(j, "address", hex);
  } else {
    srv_json_null(j, "address");
  }
  srv_json_bool(j, "inlined", inlined);
  if (label) srv_json_str(j, "site", label);
  srv_json_end(j);
}

void srv_stacks_frames_json(srv_json_t *j, const char *key, const srv_stack_row_t *row) {
  srv_json_arr(j, key);
  const lab_site_t *site = row->s.site;
  if (!row->s.depth) {
    srv__frame_json(j, site->func ? site->func : "", srv_sites_file(site), site->line,
                    "", 0, false, row->site);
    srv_json_end(j);
    return;
  }
  srv_stacks_symbols();
  /* The site labels the first frame of the function it was written in. */
  bool labelled = false;
  for (uint32_t f = 0; f < row->s.depth; f++) {
    srv_frame_t fr;
    if (!srv__sym || srv_symbols_lookup(srv__sym, row->s.frames[f], SRV_SYMBOLS_RETURN, &fr) < 0) {
      srv__frame_json(j, NULL, "", 0, "", row->s.frames[f], false, NULL);
      continue;
    }
    for (size_t k = 0; k < fr.ninlined; k++) {
      const srv_frame_line_t *in = &fr.inlined[k];
      bool mine = !labelled && site->func && !strcmp(in->function, site->func);
      srv__frame_json(j, in->function, in->file, in->line, fr.module, fr.addr, true,
                      mine ? row->site : NULL);
      labelled |= mine;
    }
    /* A function the symbol tables do not name (static in a stripped
     * library) is known by its place in its module, the same in every
     * process. */
    char place[96];
    const char *fn = fr.function;
    if (!(fr.flags & SRV_FRAME_FUNCTION) && (fr.flags & SRV_FRAME_MODULE)) {
      snprintf(place, sizeof place, "%s+0x%llx", fr.module,
               (unsigned long long)fr.module_offset);
      fn = place;
    }
    bool mine = !labelled && site->func && !strcmp(fn, site->func);
    srv__frame_json(j, fn, fr.file, fr.line, fr.module, fr.addr, false,
                    mine ? row->site : NULL);
    labelled |= mine;
  }
  srv_json_end(j);
}

/* ---- GET /api/stacks ---- */

void srv_stacks_handle(srv_req_t *rq) {
  static const char *const allowed[] = {"top", "order", NULL};
  uint64_t top = 50;
  if (!srv_http_query_only(rq, allowed) || !srv_http_query_u64(rq, "top", 1, 100000, &top))
    return;
  const char *o = srv_http_query(rq, "order");
  srv_stacks_order_t order = SRV_STACKS_BY_LIVE;
  if (o && !strcmp(o, "allocs")) order = SRV_STACKS_BY_ALLOCS;
  else if (o && strcmp(o, "live")) {
    srv_http_error(rq, 400, "order must be 'live' or 'allocs', not '%.40s'", o);
    return;
  }
  size_t n, total;
  srv_stack_row_t *rows = srv_stacks_collect(order, top, &n, &total);
  if (!rows) {
    srv_http_error(rq, 500, "out of memory listing the stacks");
    return;
  }
  lab_stats_t st;
  lab_stats(&st);
  srv_json_t j;
  srv_http_json_init(rq, &j);
  srv_json_obj(&j, NULL);
  srv_json_u64(&j, "t_ms", srv_clock_now_ms());
  srv_json_u64(&j, "live_bytes", st.live_bytes);
  srv_json_u64(&j, "live_blocks", st.live_blocks);
  srv_json_str(&j, "order", order == SRV_STACKS_BY_LIVE ? "live" : "allocs");
  srv_json_u64(&j, "depth", lab_stack_depth());
  srv_json_u64(&j, "stacks_total", total);
  srv_json_u64(&j, "stacks_dropped", lab_stack_dropped());
  srv_json_arr(&j, "stacks");
  for (size_t k = 0; k < n; k++) {
    const srv_stack_row_t *r = &rows[k];
    srv_json_obj(&j, NULL);
    srv_json_u64(&j, "id", r->s.id);
    srv_json_str(&j, "site", r->site);
    if (r->route != SRV_ROUTE_OTHER) srv_json_str(&j, "route", srv_route_path(r->route));
    else srv_json_null(&j, "route");
    srv_json_u64(&j, "bytes", r->s.live_bytes);
    srv_json_u64(&j, "blocks", r->s.live_blocks);
    srv_json_u64(&j, "total_allocs", r->s.total_allocs);
    srv_json_u64(&j, "total_bytes", r->s.total_bytes);
    srv_sites_errors_json(&j, "errors", r->s.errors);
    srv_stacks_frames_json(&j, "frames", r);
    srv_json_end(&j);
  }
  srv_json_end(&j);
  srv_json_end(&j);
  srv_mem_free(rows, SRV_MEM_OUTSIDE);
  srv_http_send_json(rq, 200, &j);
}

/* profile.c - /debug/pprof/heap and /debug/pprof/allocs. */
#include "observe/profile.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/mem.h"
#include "observe/pprof.h"
#include "observe/stacks.h"

static int srv__id_cmp(const void *a, const void *b) {
  const srv_stack_row_t *x = a, *y = b;
  return x->s.id < y->s.id ? -1 : x->s.id > y->s.id;
}

/* Blocks without a recorded stack (stacks off, or the table full) are a
 * one-frame sample at their site, as /api/stacks lists them: the frame's
 * stand-in address is the site's own record, which no code address can
 * be, and it is named by the site's function, file and line. */
typedef struct srv__names {
  srv_symbols_t *sym;       /* the process's symbolizer */
  const srv_stack_row_t *rows; /* the rows of sites alone (depth 0), */
  size_t n;                 /* ... which come first, by id (lab_stack_stats) */
} srv__names_t;

static int srv__name(void *ctx, uintptr_t addr, unsigned flags, srv_frame_t *out) {
  const srv__names_t *nm = ctx;
  for (size_t i = 0; i < nm->n; i++) {
    const lab_site_t *site = nm->rows[i].s.site;
    if ((uintptr_t)site != addr) continue;
    memset(out, 0, sizeof *out);
    out->addr = addr;
    out->function = site->func && site->func[0] ? site->func : nm->rows[i].site;
    out->file = srv_sites_file(site);
    out->line = site->line;
    out->module = out->module_path = out->build_id = "";
    out->flags = SRV_FRAME_FUNCTION | (site->line ? SRV_FRAME_LINE : 0);
    return 0;
  }
  return srv_pprof_symbols(nm->sym, addr, flags, out);
}

/* A profile over N seconds, between its two snapshots. */
typedef struct srv__wait {
  srv_stack_row_t *before;  /* the first snapshot, by id */
  size_t n0;                /* its rows */
  int64_t t0;               /* when it was taken, unix ns */
  const char *default_sample;
} srv__wait_t;

/* Answer the profile: every stack now, less `before` if there is one. */
static void srv__answer(srv_req_t *rq, const char *default_sample, bool debug,
                        srv_stack_row_t *before, size_t n0, int64_t t0) {
  srv_symbols_t *sym = srv_stacks_symbols();
  size_t n = 0;
  srv_stack_row_t *rows = srv_stacks_collect(SRV_STACKS_BY_ID, 0, &n, NULL);
  if (!rows) goto oom;
  size_t alone = 0;
  while (alone < n && !rows[alone].s.depth) alone++;
  srv_pprof_sample_t *samples = srv_mem_calloc(n ? n : 1, sizeof *samples, SRV_MEM_OUTSIDE);
  uintptr_t *stand = srv_mem_calloc(n ? n : 1, sizeof *stand, SRV_MEM_OUTSIDE);
  if (!samples || !stand) {
    srv_mem_free(samples, SRV_MEM_OUTSIDE);
    srv_mem_free(stand, SRV_MEM_OUTSIDE);
    srv_mem_free(rows, SRV_MEM_OUTSIDE);
    goto oom;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    const srv_stack_row_t *r = &rows[i];
    const srv_stack_row_t *b = before ? bsearch(r, before, n0, sizeof *before, srv__id_cmp) : NULL;
    srv_pprof_sample_t *s = &samples[m];
    /* A site alone: one frame, the site's stand-in (srv__name). */
    stand[i] = (uintptr_t)r->s.site;
    s->addrs = r->s.depth ? r->s.frames : &stand[i];
    s->depth = r->s.depth ? r->s.depth : 1;
    s->alloc_objects = (int64_t)r->s.total_allocs - (b ? (int64_t)b->s.total_allocs : 0);
    s->alloc_space = (int64_t)r->s.total_bytes - (b ? (int64_t)b->s.total_bytes : 0);
    s->inuse_objects = (int64_t)r->s.live_blocks - (b ? (int64_t)b->s.live_blocks : 0);
    s->inuse_space = (int64_t)r->s.live_bytes - (b ? (int64_t)b->s.live_bytes : 0);
    s->route = r->route != SRV_ROUTE_OTHER ? srv_route_path(r->route) : NULL;
    s->site = r->site;
    /* A difference keeps only what moved. */
    if (before && !s->alloc_objects && !s->inuse_objects) continue;
    m++;
  }
  int64_t now = (int64_t)srv_clock_now_ns();
  srv__names_t names = {sym, rows, alone};
  srv_pprof_profile_t p = {
      .samples = samples,
      .nsamples = m,
      .time_nanos = before ? t0 : now,
      .duration_nanos = before ? now - t0 : 0,
      .default_sample = default_sample,
      .symbolize = srv__name,
      .symbolize_ctx = &names,
  };
  srv_buf_t out;
  srv_buf_init(&out, srv_http_site(rq->route));
  int err = debug ? srv_pprof_write_text(&p, &out) : srv_pprof_write(&p, &out);
  srv_mem_free(samples, SRV_MEM_OUTSIDE);
  srv_mem_free(stand, SRV_MEM_OUTSIDE);
  srv_mem_free(rows, SRV_MEM_OUTSIDE);
  if (err < 0 || out.failed) {
    srv_buf_free(&out);
    srv_http_error(rq, 500, "could not write the profile");
    return;
  }
  size_t len;
  char *data = srv_buf_take(&out, &len);
  srv_http_send(rq, 200, debug ? "text/plain; charset=utf-8" : "application/octet-stream",
                data, len);
  return;
oom:
  srv_http_error(rq, 500, "out of memory listing the stacks");
}

/* Free a wait's state: after its answer, or when the request ended
 * while it waited. */
static void srv__drop(void *ctx) {
  srv__wait_t *w = ctx;
  srv_mem_free(w->before, SRV_MEM_OUTSIDE);
  srv_mem_free(w, SRV_MEM_OUTSIDE);
}

/* The wait is over (srv_http_wait): answer the difference. */
static void srv__then(srv_req_t *rq) {
  srv__wait_t *w = rq->wait_ctx;
  srv__answer(rq, w->default_sample, false, w->before, w->n0, w->t0);
  srv__drop(w);
}

static void srv__profile(srv_req_t *rq, const char *default_sample) {
  static const char *const allowed[] = {"seconds", "debug", "gc", NULL};
  uint64_t seconds = 0, debug = 0, gc = 0;
  if (!srv_http_query_only(rq, allowed) ||
      !srv_http_query_u64(rq, "seconds", 1, SRV_PROFILE_SECONDS_MAX, &seconds) ||
      !srv_http_query_u64(rq, "debug", 0, 1, &debug) ||
      !srv_http_query_u64(rq, "gc", 0, 1, &gc))
    return;
  if (debug && seconds) {
    srv_http_error(rq, 400, "debug=1 is a snapshot: the text form holds no "
                            "differences (leave out seconds)");
    return;
  }
  if (!srv_stacks_symbols()) {
    srv_http_error(rq, 503, "no symbolizer for this process (libdw)");
    return;
  }
  if (!seconds) {
    srv__answer(rq, default_sample, debug, NULL, 0, 0);
    return;
  }
  srv__wait_t *w = srv_mem_calloc(1, sizeof *w, SRV_MEM_OUTSIDE);
  if (!w) goto oom;
  w->default_sample = default_sample;
  w->t0 = (int64_t)srv_clock_now_ns();
  w->before = srv_stacks_collect(SRV_STACKS_BY_ID, 0, &w->n0, NULL);
  if (!w->before) goto oom;
  /* The second snapshot comes after the wait, which holds no thread. */
  if (srv_http_wait(rq, seconds * 1000u, srv__then, srv__drop, w) == SRV_OK) return;
  srv_http_error(rq, 503, "%d profiles over time are already waiting, the most "
                          "a worker keeps; ask again when one has answered",
                 SRV_HTTP_WAITS_MAX);
  srv__drop(w);
  return;
oom:
  if (w) srv__drop(w);
  srv_http_error(rq, 500, "out of memory listing the stacks");
}

void srv_profile_heap(srv_req_t *rq) { srv__profile(rq, NULL); }
void srv_profile_allocs(srv_req_t *rq) { srv__profile(rq, "alloc_space"); }

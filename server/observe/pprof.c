/* pprof.c - heap profiles as gzipped profile.proto and as Go's debug=1
 * text.
 *
 * Both forms start from the same table: every distinct address of the
 * samples, sorted, symbolized once, and the modules they lie in. The proto
 * adds its functions and its string table, each a sorted array of unique
 * entries whose index is the id, found again by binary search. */
#include "observe/pprof.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/err.h"
#include "core/mem.h"

/* One distinct address. */
typedef struct srv__loc {
  uintptr_t pc;        /* the address written: a return address less one,
                          so it lies in the call (profile.proto's rule) */
  uintptr_t addr;      /* as the stack had it */
  unsigned flags;      /* SRV_SYMBOLS_RETURN or 0 */
  size_t map;          /* index into maps + 1, 0: in no module */
  srv_frame_t frame;
} srv__loc_t;

/* One mapped segment of a module the addresses lie in. */
typedef struct srv__map {
  uintptr_t start, end;
  uint64_t offset;
  const char *path, *build_id;
  bool main, functions, lines, inlines;
} srv__map_t;

/* One function: a name in a file. */
typedef struct srv__fn {
  const char *name, *file;
} srv__fn_t;

typedef struct srv__prof {
  const srv_pprof_profile_t *p;
  const lab_site_t *site;
  srv__loc_t *locs;
  size_t nlocs;
  srv__map_t *maps; /* by start address */
  size_t nmaps;
  size_t main;      /* index of the executable's mapping, or nmaps */
  srv__fn_t *fns;
  size_t nfns;
  const char **strs; /* without "", which is index 0 */
  size_t nstrs;
} srv__prof_t;

int srv_pprof_symbols(void *ctx, uintptr_t addr, unsigned flags, srv_frame_t *out) {
  return srv_symbols_lookup(ctx, addr, flags, out);
}

/* ---- The table of addresses and modules. ---- */

static int srv__cmp_pc(const void *a, const void *b) {
  const srv__loc_t *x = a, *y = b;
  return x->pc < y->pc ? -1 : x->pc > y->pc;
}

static int srv__cmp_map(const void *a, const void *b) {
  const srv__map_t *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return strcmp(x->path, y->path);
}

/* The pc written for frame i of a sample, and how to look it up. */
static uintptr_t srv__pc(const srv_pprof_profile_t *p, uintptr_t addr, size_t i,
                         unsigned *flags) {
  bool ret = addr && !(p->leaf_is_pc && i == 0);
  *flags = ret ? SRV_SYMBOLS_RETURN : 0;
  return ret ? addr - 1 : addr;
}

static size_t srv__loc_index(const srv__prof_t *pr, uintptr_t pc) {
  srv__loc_t key = {.pc = pc};
  const srv__loc_t *l = bsearch(&key, pr->locs, pr->nlocs, sizeof key, srv__cmp_pc);
  return (size_t)(l - pr->locs);
}

static int srv__table(srv__prof_t *pr) {
  const srv_pprof_profile_t *p = pr->p;
  size_t total = 0;
  for (size_t s = 0; s < p->nsamples; s++) total += p->samples[s].depth;
  pr->locs = srv_mem_calloc(total + 1, sizeof *pr->locs, pr->site);
  if (!pr->locs) return SRV_ENOMEM;
  size_t n = 0;
  for (size_t s = 0; s < p->nsamples; s++)
    for (size_t i = 0; i < p->samples[s].depth; i++) {
      srv__loc_t *l = &pr->locs[n++];
      l->addr = p->samples[s].addrs[i];
      l->pc = srv__pc(p, l->addr, i, &l->flags);
    }
  qsort(pr->locs, n, sizeof *pr->locs, srv__cmp_pc);
  for (size_t i = 0; i < n; i++)
    if (!pr->nlocs || pr->locs[pr->nlocs - 1].pc != pr->locs[i].pc)
      pr->locs[pr->nlocs++] = pr->locs[i];

  pr->maps = srv_mem_calloc(pr->nlocs + 1, sizeof *pr->maps, pr->site);
  if (!pr->maps) return SRV_ENOMEM;
  for (size_t i = 0; i < pr->nlocs; i++) {
    srv__loc_t *l = &pr->locs[i];
    p->symbolize(p->symbolize_ctx, l->addr, l->flags, &l->frame);
    const srv_frame_t *f = &l->frame;
    if (f->flags & SRV_FRAME_MODULE)
      pr->maps[pr->nmaps++] = (srv__map_t){.start = f->map_start,
                                           .end = f->map_end,
                                           .offset = f->map_offset,
                                           .path = f->module_path,
                                           .build_id = f->build_id,
                                           .main = (f->flags & SRV_FRAME_MAIN) != 0};
  }
  qsort(pr->maps, pr->nmaps, sizeof *pr->maps, srv__cmp_map);
  n = pr->nmaps;
  pr->nmaps = 0;
  for (size_t i = 0; i < n; i++)
    if (!pr->nmaps || srv__cmp_map(&pr->maps[pr->nmaps - 1], &pr->maps[i]))
      pr->maps[pr->nmaps++] = pr->maps[i];
  pr->main = pr->nmaps;
  for (size_t i = 0; i < pr->nmaps; i++)
    if (pr->maps[i].main && pr->main == pr->nmaps) pr->main = i;

  for (size_t i = 0; i < pr->nlocs; i++) {
    const srv_frame_t *f = &pr->locs[i].frame;
    if (!(f->flags & SRV_FRAME_MODULE)) continue;
    srv__map_t key = {.start = f->map_start, .path = f->module_path};
    srv__map_t *m = bsearch(&key, pr->maps, pr->nmaps, sizeof key, srv__cmp_map);
    pr->locs[i].map = (size_t)(m - pr->maps) + 1;
    m->functions |= (f->flags & SRV_FRAME_FUNCTION) != 0;
    m->lines |= (f->flags & SRV_FRAME_LINE) != 0;
    m->inlines |= f->ninlined > 0;
  }
  return SRV_OK;
}

/* Mapping ids: the executable's is 1 (profile.proto wants the main
 * binary first), the others follow by address. */
static uint64_t srv__map_id(const srv__prof_t *pr, size_t index) {
  if (index == pr->main) return 1;
  return index + (index < pr->main ? 2 : 1);
}

static void srv__table_free(srv__prof_t *pr) {
  srv_mem_free(pr->locs, pr->site);
  srv_mem_free(pr->maps, pr->site);
  srv_mem_free(pr->fns, pr->site);
  srv_mem_free(pr->strs, pr->site);
}

/* ---- Functions and strings, for the proto. ---- */

static int srv__cmp_fn(const void *a, const void *b) {
  const srv__fn_t *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->file, y->file);
}

static int srv__cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *const srv__fixed[] = {
    "alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "count",
    "bytes",         "space",       "route",         "site",
};
#define SRV__NFIXED (sizeof srv__fixed / sizeof srv__fixed[0])

/* Sort and deduplicate n entries of size sz; returns how many are left. */
static size_t srv__unique(void *base, size_t n, size_t sz,
                          int (*cmp)(const void *, const void *)) {
  qsort(base, n, sz, cmp);
  char *a = base;
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (!m || cmp(a + (m - 1) * sz, a + i * sz)) memmove(a + m++ * sz, a + i * sz, sz);
  return m;
}

static int srv__names(srv__prof_t *pr) {
  size_t nf = 0;
  for (size_t i = 0; i < pr->nlocs; i++) nf += pr->locs[i].frame.ninlined + 1;
  pr->fns = srv_mem_calloc(nf + 1, sizeof *pr->fns, pr->site);
  /* Each function brings two strings, each sample two, each mapping two. */
  size_t ns = SRV__NFIXED + 2 * nf + 2 * pr->p->nsamples + 2 * pr->nmaps;
  pr->strs = srv_mem_calloc(ns + 1, sizeof *pr->strs, pr->site);
  if (!pr->fns || !pr->strs) return SRV_ENOMEM;
  nf = ns = 0;
  for (size_t i = 0; i < pr->nlocs; i++) {
    const srv_frame_t *f = &pr->locs[i].frame;
    if (!(f->flags & SRV_FRAME_FUNCTION)) continue;
    for (size_t k = 0; k < f->ninlined; k++)
      pr->fns[nf++] = (srv__fn_t){f->inlined[k].function, f->inlined[k].file};
    pr->fns[nf++] = (srv__fn_t){f->function, f->file};
  }
  pr->nfns = srv__unique(pr->fns, nf, sizeof *pr->fns, srv__cmp_fn);
  for (size_t i = 0; i < SRV__NFIXED; i++) pr->strs[ns++] = srv__fixed[i];
  for (size_t i = 0; i < pr->nfns; i++) {
    pr->strs[ns++] = pr->fns[i].name;
    pr->strs[ns++] = pr->fns[i].file;
  }
  for (size_t i = 0; i < pr->p->nsamples; i++) {
    const srv_pprof_sample_t *s = &pr->p->samples[i];
    pr->strs[ns++] = s->route ? s->route : "";
    pr->strs[ns++] = s->site ? s->site : "";
  }
  for (size_t i = 0; i < pr->nmaps; i++) {
    pr->strs[ns++] = pr->maps[i].path;
    pr->strs[ns++] = pr->maps[i].build_id;
  }
  pr->nstrs = srv__unique(pr->strs, ns, sizeof *pr->strs, srv__cmp_str);
  if (pr->nstrs && !*pr->strs[0]) memmove(pr->strs, pr->strs + 1, --pr->nstrs * sizeof *pr->strs);
  return SRV_OK;
}

/* A string's index in the string table; "" (and NULL) is 0. */
static uint64_t srv__str_id(const srv__prof_t *pr, const char *s) {
  if (!s || !*s) return 0;
  const char *const *e = bsearch(&s, pr->strs, pr->nstrs, sizeof *pr->strs, srv__cmp_str);
  return e ? (uint64_t)(e - pr->strs) + 1 : 0;
}

static uint64_t srv__fn_id(const srv__prof_t *pr, const char *name, const char *file) {
  srv__fn_t key = {name, file};
  const srv__fn_t *e = bsearch(&key, pr->fns, pr->nfns, sizeof key, srv__cmp_fn);
  return e ? (uint64_t)(e - pr->fns) + 1 : 0;
}

/* ---- The protobuf wire format: varints and length-delimited fields. ---- */

enum { SRV__VARINT = 0, SRV__LEN = 2 };

static void srv__varint(srv_buf_t *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  do {
    tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  srv_buf_append(b, tmp, n);
}

/* A varint field; proto3 leaves zero out. int64 fields pass their two's
 * complement, as protobuf does. */
static void srv__field(srv_buf_t *b, unsigned field, uint64_t v) {
  if (!v) return;
  srv__varint(b, (uint64_t)field << 3 | SRV__VARINT);
  srv__varint(b, v);
}

static void srv__bytes(srv_buf_t *b, unsigned field, const void *p, size_t n) {
  srv__varint(b, (uint64_t)field << 3 | SRV__LEN);
  srv__varint(b, n);
  if (n) srv_buf_append(b, p, n);
}

/* Append sub as a message field of b, and empty sub for the next one. */
static void srv__message(srv_buf_t *b, unsigned field, srv_buf_t *sub) {
  srv__bytes(b, field, sub->data, sub->len);
  sub->len = 0;
}

/* A ValueType {type, unit} message. */
static void srv__value_type(const srv__prof_t *pr, srv_buf_t *b, unsigned field,
                            const char *type, const char *unit, srv_buf_t *sub) {
  srv__field(sub, 1, srv__str_id(pr, type));
  srv__field(sub, 2, srv__str_id(pr, unit));
  srv__message(b, field, sub);
}

static void srv__label(const srv__prof_t *pr, srv_buf_t *b, const char *key,
                       const char *value, srv_buf_t *sub) {
  if (!value || !*value) return;
  srv__field(sub, 1, srv__str_id(pr, key));
  srv__field(sub, 2, srv__str_id(pr, value));
  srv__message(b, 3, sub);
}

static void srv__samples(const srv__prof_t *pr, srv_buf_t *b, srv_buf_t *s1, srv_buf_t *s2) {
  const srv_pprof_profile_t *p = pr->p;
  for (size_t i = 0; i < p->nsamples; i++) {
    const srv_pprof_sample_t *s = &p->samples[i];
    for (size_t k = 0; k < s->depth; k++) {
      unsigned flags;
      srv__varint(s2, srv__loc_index(pr, srv__pc(p, s->addrs[k], k, &flags)) + 1);
    }
    srv__message(s1, 1, s2);
    const int64_t v[4] = {s->alloc_objects, s->alloc_space, s->inuse_objects, s->inuse_space};
    for (int k = 0; k < 4; k++) srv__varint(s2, (uint64_t)v[k]);
    srv__message(s1, 2, s2);
    srv__label(pr, s1, "route", s->route, s2);
    srv__label(pr, s1, "site", s->site, s2);
    srv__message(b, 2, s1);
  }
}

static void srv__mapping(const srv__prof_t *pr, srv_buf_t *b, size_t i, srv_buf_t *sub) {
  const srv__map_t *m = &pr->maps[i];
  srv__field(sub, 1, srv__map_id(pr, i));
  srv__field(sub, 2, m->start);
  srv__field(sub, 3, m->end);
  srv__field(sub, 4, m->offset);
  srv__field(sub, 5, srv__str_id(pr, m->path));
  srv__field(sub, 6, srv__str_id(pr, m->build_id));
  srv__field(sub, 7, m->functions);
  srv__field(sub, 8, m->lines);
  srv__field(sub, 9, m->lines);
  srv__field(sub, 10, m->inlines);
  srv__message(b, 3, sub);
}

/* A Line {function_id, line} of a Location. */
static void srv__line(const srv__prof_t *pr, srv_buf_t *b, const char *function,
                      const char *file, int line, srv_buf_t *sub) {
  srv__field(sub, 1, srv__fn_id(pr, function, file));
  srv__field(sub, 2, (uint64_t)(int64_t)line);
  srv__message(b, 4, sub);
}

static void srv__locations(const srv__prof_t *pr, srv_buf_t *b, srv_buf_t *s1, srv_buf_t *s2) {
  for (size_t i = 0; i < pr->nlocs; i++) {
    const srv__loc_t *l = &pr->locs[i];
    const srv_frame_t *f = &l->frame;
    srv__field(s1, 1, i + 1);
    if (l->map) srv__field(s1, 2, srv__map_id(pr, l->map - 1));
    srv__field(s1, 3, l->pc);
    if (f->flags & SRV_FRAME_FUNCTION) {
      for (size_t k = 0; k < f->ninlined; k++)
        srv__line(pr, s1, f->inlined[k].function, f->inlined[k].file, f->inlined[k].line, s2);
      srv__line(pr, s1, f->function, f->file, f->line, s2);
    }
    srv__message(b, 4, s1);
  }
}

static void srv__proto(const srv__prof_t *pr, srv_buf_t *b, srv_buf_t *s1, srv_buf_t *s2) {
  for (int k = 0; k < 4; k++)
    srv__value_type(pr, b, 1, srv__fixed[k], k % 2 ? "bytes" : "count", s1);
  srv__samples(pr, b, s1, s2);
  if (pr->main < pr->nmaps) srv__mapping(pr, b, pr->main, s1);
  for (size_t i = 0; i < pr->nmaps; i++)
    if (i != pr->main) srv__mapping(pr, b, i, s1);
  srv__locations(pr, b, s1, s2);
  for (size_t i = 0; i < pr->nfns; i++) {
    srv__field(s1, 1, i + 1);
    srv__field(s1, 2, srv__str_id(pr, pr->fns[i].name));
    srv__field(s1, 3, srv__str_id(pr, pr->fns[i].name));
    srv__field(s1, 4, srv__str_id(pr, pr->fns[i].file));
    srv__message(b, 5, s1);
  }
  srv__bytes(b, 6, "", 0);
  for (size_t i = 0; i < pr->nstrs; i++) srv__bytes(b, 6, pr->strs[i], strlen(pr->strs[i]));
  srv__field(b, 9, (uint64_t)pr->p->time_nanos);
  srv__field(b, 10, (uint64_t)pr->p->duration_nanos);
  srv__value_type(pr, b, 11, "space", "bytes", s1);
  srv__field(b, 12, 1);
  /* Must be one of the sample types, whose names are in the table. */
  if (pr->p->default_sample) srv__field(b, 14, srv__str_id(pr, pr->p->default_sample));
}

/* ---- gzip, with zlib's state where the output is (core/mem.h) ---- */

static voidpf srv__zalloc(voidpf site, uInt items, uInt size) {
  return srv_mem_calloc(items, size, site);
}

static void srv__zfree(voidpf site, voidpf p) { srv_mem_free(p, site); }

static int srv__gzip(const srv_buf_t *in, srv_buf_t *out) {
  if (in->len > UINT_MAX) return SRV_E2BIG;
  z_stream z = {.zalloc = srv__zalloc, .zfree = srv__zfree, .opaque = (voidpf)out->site};
  int zrc = deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  if (zrc != Z_OK) return zrc == Z_MEM_ERROR ? SRV_ENOMEM : SRV_EIO;
  int rc = SRV_OK;
  uLong bound = deflateBound(&z, in->len);
  if (bound > UINT_MAX) {
    rc = SRV_E2BIG;
    goto out_end;
  }
  if (srv_buf_reserve(out, bound) != SRV_OK) {
    rc = SRV_ENOMEM;
    goto out_end;
  }
  z.next_in = (Bytef *)(in->data ? in->data : "");
  z.avail_in = (uInt)in->len;
  z.next_out = (Bytef *)out->data + out->len;
  z.avail_out = (uInt)bound;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
    rc = SRV_EIO;
    goto out_end;
  }
  out->len += bound - z.avail_out;
  out->data[out->len] = '\0';
out_end:
  deflateEnd(&z);
  return rc;
}

int srv_pprof_write(const srv_pprof_profile_t *p, srv_buf_t *out) {
  if (!p->symbolize) return SRV_EINVAL;
  srv__prof_t pr = {.p = p, .site = out->site};
  srv_buf_t raw, s1, s2;
  srv_buf_init(&raw, out->site);
  srv_buf_init(&s1, out->site);
  srv_buf_init(&s2, out->site);
  int rc = srv__table(&pr);
  if (rc == SRV_OK) rc = srv__names(&pr);
  if (rc == SRV_OK) {
    srv__proto(&pr, &raw, &s1, &s2);
    rc = raw.failed || s1.failed || s2.failed ? SRV_ENOMEM : srv__gzip(&raw, out);
  }
  srv_buf_free(&s2);
  srv_buf_free(&s1);
  srv_buf_free(&raw);
  srv__table_free(&pr);
  return rc;
}

/* ---- Go's debug=1 text. ---- */

static void srv__text_frames(srv_buf_t *out, const srv__loc_t *l) {
  const srv_frame_t *f = &l->frame;
  if (!(f->flags & SRV_FRAME_FUNCTION)) {
    srv_buf_printf(out, "#\t%#" PRIxPTR "\n", l->pc);
    return;
  }
  for (size_t k = 0; k < f->ninlined; k++)
    srv_buf_printf(out, "#\t%#" PRIxPTR "\t%s\t%s:%d\n", l->pc, f->inlined[k].function,
                   f->inlined[k].file, f->inlined[k].line);
  srv_buf_printf(out, "#\t%#" PRIxPTR "\t%s+0x%" PRIx64, l->pc, f->function, f->function_offset);
  if (f->flags & SRV_FRAME_LINE) srv_buf_printf(out, "\t%s:%d\n", f->file, f->line);
  else srv_buf_printf(out, "\t[%s]\n", f->module);
}

int srv_pprof_write_text(const srv_pprof_profile_t *p, srv_buf_t *out) {
  if (!p->symbolize) return SRV_EINVAL;
  srv__prof_t pr = {.p = p, .site = out->site};
  int rc = srv__table(&pr);
  if (rc != SRV_OK) goto out_free;
  int64_t t[4] = {0};
  for (size_t i = 0; i < p->nsamples; i++) {
    t[0] += p->samples[i].inuse_objects;
    t[1] += p->samples[i].inuse_space;
    t[2] += p->samples[i].alloc_objects;
    t[3] += p->samples[i].alloc_space;
  }
  /* heap/2: Go writes twice its sampling rate; pprof halves it to 1. */
  srv_buf_printf(out,
                 "heap profile: %" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] @ heap/2\n",
                 t[0], t[1], t[2], t[3]);
  for (size_t i = 0; i < p->nsamples; i++) {
    const srv_pprof_sample_t *s = &p->samples[i];
    srv_buf_printf(out, "%" PRId64 ": %" PRId64 " [%" PRId64 ": %" PRId64 "] @", s->inuse_objects,
                   s->inuse_space, s->alloc_objects, s->alloc_space);
    /* pprof takes one off every address: a leaf pc is written one on. */
    for (size_t k = 0; k < s->depth; k++) {
      unsigned flags;
      srv_buf_printf(out, " %#" PRIxPTR, srv__pc(p, s->addrs[k], k, &flags) + 1);
    }
    srv_buf_puts(out, "\n");
    if ((s->route && *s->route) || (s->site && *s->site))
      srv_buf_printf(out, "# labels: route=%s site=%s\n", s->route ? s->route : "",
                     s->site ? s->site : "");
    for (size_t k = 0; k < s->depth; k++) {
      unsigned flags;
      srv__text_frames(out, &pr.locs[srv__loc_index(&pr, srv__pc(p, s->addrs[k], k, &flags))]);
    }
    srv_buf_puts(out, "\n");
  }
  srv_buf_puts(out, "MAPPED_LIBRARIES:\n");
  for (size_t i = 0; i < pr.nmaps; i++) {
    const srv__map_t *m = &pr.maps[i];
    srv_buf_printf(out, "%" PRIxPTR "-%" PRIxPTR " r-xp %s (@%" PRIx64 ")%s%s\n", m->start, m->end,
                   m->path, m->offset, *m->build_id ? " " : "", m->build_id);
  }
  rc = out->failed ? SRV_ENOMEM : SRV_OK;
out_free:
  srv__table_free(&pr);
  return rc;
}

/* symbols.c - addresses to frames through libdwfl, cached per address.
 *
 * Every string and array a frame points to is copied into an arena of
 * chunks that only grows, so frames handed out stay valid while the
 * cache's table is rehashed or the maps are read again. */
#define _GNU_SOURCE
#include "observe/symbols.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"

#define SRV__REFRESH_NS 1000000000ull /* maps re-read on a miss at most this often */
#define SRV__CHUNK 16384              /* arena chunk size */
#define SRV__TABLE_MIN 64             /* first table size (a power of two) */
#define SRV__INLINE_MAX 16            /* inlined functions kept per address */

typedef struct srv__chunk {
  struct srv__chunk *next;
  size_t used, cap;
  max_align_t data[];
} srv__chunk_t;

/* A module as it was mapped when an address in it was resolved. */
typedef struct srv__module {
  struct srv__module *next;
  uintptr_t start, end;
  const char *name, *path, *build_id;
  bool main;                      /* the process's executable */
} srv__module_t;

/* One resolved address; key 0 marks an empty slot. */
typedef struct srv__entry {
  uint64_t key;                   /* addr << 2 | 2 | is a return address */
  uint64_t gen;                   /* maps generation it was resolved in */
  const char *function, *file;
  const srv_frame_line_t *inlined;
  const srv__module_t *module;    /* NULL: in no module */
  uintptr_t map_start, map_end;   /* the segment holding the address */
  uint64_t map_offset;
  uint64_t module_offset;
  uint64_t function_offset;
  uint32_t ninlined;
  int line;
  unsigned flags;
} srv__entry_t;

struct srv_symbols {
  pthread_mutex_t lock;
  Dwfl *dwfl;
  pid_t pid;                      /* the process read, 0: this one */
  char exe[4096];                 /* /proc/PID/exe's target, or "" */
  uint64_t gen;                   /* bumped by every read of the maps */
  uint64_t refreshed_ns;          /* last re-read on a miss, 0: none yet */
  srv__entry_t *table;
  size_t cap, count;              /* slots (a power of two), used */
  srv__chunk_t *chunks;
  srv__module_t *modules;
  srv_symbols_stats_t st;
};

static char *srv__debuginfo_path; /* libdwfl's default search path */

static const Dwfl_Callbacks srv__callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &srv__debuginfo_path,
};

static void *srv__arena(srv_symbols_t *s, size_t n) {
  n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
  srv__chunk_t *c = s->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > SRV__CHUNK ? n : SRV__CHUNK;
    c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->used = 0;
    c->cap = cap;
    c->next = s->chunks;
    s->chunks = c;
    s->st.cache_bytes += sizeof *c + cap;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

static const char *srv__str(srv_symbols_t *s, const char *str) {
  if (!str || !*str) return "";
  size_t n = strlen(str) + 1;
  char *p = srv__arena(s, n);
  if (p) memcpy(p, str, n);
  return p;
}

static const char *srv__basename(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int srv__report(srv_symbols_t *s) {
  dwfl_report_begin(s->dwfl);
  /* 0 follows this process across a fork: the child reads its own maps. */
  int rc = dwfl_linux_proc_report(s->dwfl, s->pid ? s->pid : getpid());
  if (dwfl_report_end(s->dwfl, NULL, NULL) != 0 && rc == 0) rc = -1;
  s->gen++;
  if (rc == 0) return SRV_OK;
  if (rc == ENOENT || rc == ESRCH) return SRV_ENOENT;
  if (rc == EACCES || rc == EPERM) return SRV_EACCES;
  if (rc == ENOMEM) return SRV_ENOMEM;
  return SRV_EIO;
}

int srv_symbols_open(pid_t pid, srv_symbols_t **out) {
  *out = NULL;
  srv_symbols_t *s = calloc(1, sizeof *s);
  if (!s) return SRV_ENOMEM;
  s->pid = pid == getpid() ? 0 : pid;
  char link[32];
  snprintf(link, sizeof link, "/proc/%d/exe", (int)(s->pid ? s->pid : getpid()));
  ssize_t n = readlink(link, s->exe, sizeof s->exe - 1);
  s->exe[n > 0 ? n : 0] = '\0';
  s->dwfl = dwfl_begin(&srv__callbacks);
  if (!s->dwfl) {
    free(s);
    return SRV_ENOMEM;
  }
  int rc = srv__report(s);
  if (rc) {
    dwfl_end(s->dwfl);
    free(s);
    return rc;
  }
  pthread_mutex_init(&s->lock, NULL);
  *out = s;
  return SRV_OK;
}

void srv_symbols_close(srv_symbols_t *s) {
  if (!s) return;
  dwfl_end(s->dwfl);
  for (srv__chunk_t *c = s->chunks, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(s->table);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

static size_t srv__slot(uint64_t key, size_t cap) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static srv__entry_t *srv__find(srv_symbols_t *s, uint64_t key) {
  if (!s->cap) return NULL;
  for (size_t i = srv__slot(key, s->cap);; i = (i + 1) & (s->cap - 1)) {
    if (s->table[i].key == key) return &s->table[i];
    if (!s->table[i].key) return NULL;
  }
}

/* A slot for a new key, growing the table past half full; NULL when out
 * of memory. */
static srv__entry_t *srv__insert(srv_symbols_t *s, uint64_t key) {
  if ((s->count + 1) * 2 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : SRV__TABLE_MIN;
    srv__entry_t *t = calloc(cap, sizeof *t);
    if (!t) return NULL;
    for (size_t i = 0; i < s->cap; i++) {
      if (!s->table[i].key) continue;
      size_t j = srv__slot(s->table[i].key, cap);
      while (t[j].key) j = (j + 1) & (cap - 1);
      t[j] = s->table[i];
    }
    free(s->table);
    s->st.cache_bytes += (cap - s->cap) * sizeof *t;
    s->table = t;
    s->cap = cap;
  }
  size_t i = srv__slot(key, s->cap);
  while (s->table[i].key) i = (i + 1) & (s->cap - 1);
  s->count++;
  s->st.entries = s->count;
  return &s->table[i];
}

static const srv__module_t *srv__module(srv_symbols_t *s, Dwfl_Module *mod) {
  Dwarf_Addr start = 0, end = 0;
  const char *path = dwfl_module_info(mod, NULL, &start, &end, NULL, NULL,
                                      NULL, NULL);
  if (!path) path = "";
  for (srv__module_t *m = s->modules; m; m = m->next)
    if (m->start == start && m->end == end && !strcmp(m->path, path)) return m;
  srv__module_t *m = srv__arena(s, sizeof *m);
  if (!m) return NULL;
  m->start = start;
  m->end = end;
  m->path = srv__str(s, path);
  m->name = m->path ? srv__basename(m->path) : NULL;
  m->build_id = "";
  m->main = s->exe[0] && !strcmp(path, s->exe);
  GElf_Addr bias;
  const unsigned char *bits;
  GElf_Addr vaddr;
  int n = dwfl_module_getelf(mod, &bias) ? dwfl_module_build_id(mod, &bits, &vaddr) : 0;
  if (n > 0) {
    char *hex = srv__arena(s, 2 * (size_t)n + 1);
    if (hex) {
      for (int i = 0; i < n; i++) sprintf(hex + 2 * i, "%02x", bits[i]);
      m->build_id = hex;
    }
  }
  if (!m->path || !m->build_id) return NULL;
  m->next = s->modules;
  s->modules = m;
  return m;
}

static const char *srv__die_name(Dwarf_Die *die) {
  Dwarf_Attribute a;
  const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
  return name ? name : "";
}

/* Where an inlined call was made: its call file and line. */
static void srv__call_site(Dwarf_Die *cu, Dwarf_Die *inl, const char **file, int *line) {
  Dwarf_Attribute a;
  Dwarf_Word idx = 0, ln = 0;
  Dwarf_Files *files;
  size_t nfiles;
  *file = "";
  *line = 0;
  if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &a), &ln) == 0) *line = (int)ln;
  if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &a), &idx) == 0 &&
      dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && idx < nfiles) {
    const char *f = dwarf_filesrc(files, idx, NULL, NULL);
    if (f) *file = f;
  }
}

/* The function scopes (subprograms and inlined calls) around pc in cu,
 * outermost first, at most max. dwarf_getscopes gives up on the units
 * GCC writes with -flto ("no address value"); this walk does not. */
static int srv__scopes(Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die *out, int max) {
  Dwarf_Die cur = *cu, kid;
  int n = 0;
  while (n < max && dwarf_child(&cur, &kid) == 0) {
    while (dwarf_haspc(&kid, pc) != 1)
      if (dwarf_siblingof(&kid, &kid) != 0) return n;
    int tag = dwarf_tag(&kid);
    if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) out[n++] = kid;
    cur = kid;
  }
  return n;
}

/* File and line of pc, and the functions inlined there, from DWARF into
 * e; the real function's name from DWARF in *dwarf_name ("" if none).
 * 1 when found, 0 when the module has no line for pc, SRV_ENOMEM. */
static int srv__lines(srv_symbols_t *s, Dwfl_Module *mod, uintptr_t pc,
                      srv__entry_t *e, const char **dwarf_name) {
  *dwarf_name = "";
  Dwfl_Line *dl = dwfl_module_getsrc(mod, pc);
  Dwarf_Addr lbias;
  Dwarf_Line *l = dl ? dwfl_dwarf_line(dl, &lbias) : NULL;
  int line = 0;
  const char *file = l ? dwarf_linesrc(l, NULL, NULL) : NULL;
  if (!file || dwarf_lineno(l, &line) != 0) return 0;

  /* Innermost scope first: each inlined call moves file:line out to
   * where it was made, until the function it was inlined into. */
  srv_frame_line_t inl[SRV__INLINE_MAX];
  uint32_t n = 0;
  const char *name = "";
  Dwarf_Addr bias;
  Dwarf_Die *cu = dwfl_module_addrdie(mod, pc, &bias);
  Dwarf_Die scopes[SRV__INLINE_MAX + 1];
  int nscopes = cu ? srv__scopes(cu, pc - bias, scopes, SRV__INLINE_MAX + 1) : 0;
  if (nscopes > SRV__INLINE_MAX) nscopes = 0; /* deeper than kept: the row alone */
  for (int i = nscopes; i-- > 0;) {
    if (dwarf_tag(&scopes[i]) == DW_TAG_subprogram) {
      name = srv__die_name(&scopes[i]);
      break;
    }
    inl[n++] = (srv_frame_line_t){srv__die_name(&scopes[i]), file, line};
    srv__call_site(cu, &scopes[i], &file, &line);
  }

  int rc = 1;
  e->file = srv__str(s, file);
  e->line = line;
  *dwarf_name = srv__str(s, name);
  srv_frame_line_t *copy = n ? srv__arena(s, n * sizeof *copy) : NULL;
  if (!e->file || !*dwarf_name || (n && !copy)) rc = SRV_ENOMEM;
  for (uint32_t i = 0; copy && i < n; i++) {
    copy[i].function = srv__str(s, inl[i].function);
    copy[i].file = srv__str(s, inl[i].file);
    copy[i].line = inl[i].line;
    if (!copy[i].function || !copy[i].file) rc = SRV_ENOMEM;
  }
  e->inlined = copy;
  e->ninlined = n;
  return rc;
}

/* The loaded segment of mod holding pc, page-aligned as the kernel maps
 * it; the module's whole range at offset 0 when pc is in none. */
static void srv__segment(Dwfl_Module *mod, uintptr_t pc, srv__entry_t *e) {
  Dwarf_Addr start = 0, end = 0;
  dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL);
  e->map_start = start;
  e->map_end = end;
  e->map_offset = 0;
  GElf_Addr bias;
  Elf *elf = dwfl_module_getelf(mod, &bias);
  size_t n;
  if (!elf || elf_getphdrnum(elf, &n) != 0) return;
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < n; i++) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD) continue;
    uint64_t lo = bias + ph.p_vaddr, hi = lo + ph.p_memsz;
    if (pc < lo || pc >= hi) continue;
    e->map_start = lo & ~(page - 1);
    e->map_end = (hi + page - 1) & ~(page - 1);
    e->map_offset = ph.p_offset & ~(page - 1);
    return;
  }
}

/* The module pc lies in, or NULL. (libdwfl answers the last module for
 * an address past every mapping.) */
static Dwfl_Module *srv__module_at(srv_symbols_t *s, uintptr_t pc) {
  Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
  Dwarf_Addr start, end;
  if (!mod || !dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL))
    return NULL;
  return start <= pc && pc < end ? mod : NULL;
}

/* Fill e for pc from libdwfl (and dladdr). False when out of memory. */
static bool srv__resolve(srv_symbols_t *s, uintptr_t addr, uintptr_t pc,
                         srv__entry_t *e) {
  Dwfl_Module *mod = srv__module_at(s, pc);
  uint64_t now = srv_clock_mono_ns();
  if (!mod && (!s->refreshed_ns || now - s->refreshed_ns >= SRV__REFRESH_NS)) {
    s->refreshed_ns = now;
    s->st.refreshes++;
    srv__report(s);
    mod = srv__module_at(s, pc);
  }
  e->gen = s->gen;
  e->flags = 0;
  e->file = "";
  e->line = 0;
  e->inlined = NULL;
  e->ninlined = 0;
  e->module = NULL;
  e->map_start = e->map_end = 0;
  e->map_offset = 0;
  e->module_offset = 0;
  e->function_offset = 0;
  const char *name = NULL;
  if (mod) {
    e->module = srv__module(s, mod);
    if (!e->module) return false;
    e->flags |= SRV_FRAME_MODULE | (e->module->main ? SRV_FRAME_MAIN : 0);
    GElf_Addr bias = 0;
    if (dwfl_module_getelf(mod, &bias)) e->module_offset = pc - bias;
    srv__segment(mod, pc, e);
    GElf_Off off = 0;
    GElf_Sym sym;
    name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
    if (name) e->function_offset = off;
    const char *dwarf_name;
    int found = srv__lines(s, mod, pc, e, &dwarf_name);
    if (found < 0) return false;
    if (found) {
      e->flags |= SRV_FRAME_LINE;
      if (!name && *dwarf_name) name = dwarf_name;
    }
  }
  Dl_info info;
  if (!name && !s->pid && dladdr((void *)pc, &info) && info.dli_sname) {
    name = info.dli_sname;
    e->function_offset = pc - (uintptr_t)info.dli_saddr;
  }
  if (name && *name) {
    e->function = srv__str(s, name);
    e->flags |= SRV_FRAME_FUNCTION;
  } else {
    char hex[2 + 2 * sizeof addr + 1];
    snprintf(hex, sizeof hex, "0x%" PRIxPTR, addr);
    e->function = srv__str(s, hex);
  }
  return e->function != NULL;
}

static void srv__frame(const srv__entry_t *e, uintptr_t addr, srv_frame_t *out) {
  const srv__module_t *m = e->module;
  *out = (srv_frame_t){
      .addr = addr,
      .flags = e->flags,
      .function = e->function,
      .function_offset = e->function_offset,
      .file = e->file,
      .line = e->line,
      .inlined = e->inlined,
      .ninlined = e->ninlined,
      .module = m ? m->name : "",
      .module_path = m ? m->path : "",
      .build_id = m ? m->build_id : "",
      .map_start = e->map_start,
      .map_end = e->map_end,
      .map_offset = e->map_offset,
      .module_offset = e->module_offset,
  };
}

/* A cached frame in no module is tried again once the maps were read
 * since, or may be read again. */
static bool srv__stale(const srv_symbols_t *s, const srv__entry_t *e) {
  if (e->flags & SRV_FRAME_MODULE) return false;
  return e->gen != s->gen ||
         srv_clock_mono_ns() - s->refreshed_ns >= SRV__REFRESH_NS;
}

int srv_symbols_lookup(srv_symbols_t *s, uintptr_t addr, unsigned flags,
                       srv_frame_t *out) {
  bool ret = (flags & SRV_SYMBOLS_RETURN) && addr;
  uintptr_t pc = ret ? addr - 1 : addr;
  uint64_t key = (uint64_t)addr << 2 | 2u | ret; /* never 0 */
  int rc = SRV_OK;
  pthread_mutex_lock(&s->lock);
  s->st.lookups++;
  srv__entry_t *e = srv__find(s, key);
  if (e && !srv__stale(s, e)) {
    s->st.hits++;
    srv__frame(e, addr, out);
    goto out_unlock;
  }
  srv__entry_t fresh = {.key = key};
  if (srv__resolve(s, addr, pc, &fresh) && (e || (e = srv__insert(s, key)))) {
    *e = fresh;
    srv__frame(e, addr, out);
    goto out_unlock;
  }
  rc = SRV_ENOMEM;
  fresh = (srv__entry_t){.function = "?", .file = ""};
  srv__frame(&fresh, addr, out);
out_unlock:
  pthread_mutex_unlock(&s->lock);
  return rc;
}

void srv_symbols_stats(srv_symbols_t *s, srv_symbols_stats_t *out) {
  pthread_mutex_lock(&s->lock);
  *out = s->st;
  pthread_mutex_unlock(&s->lock);
}

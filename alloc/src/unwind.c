/* unwind.c - walking the calling thread's stack by its unwind tables,
 * with what the tables say cached per return address.
 *
 * The tables (.eh_frame, which every x86-64 object carries, frame
 * pointers or not) say, for each code address, how to find the caller's
 * frame: the canonical frame address (CFA) is a register (rsp or rbp)
 * plus an offset, the return address sits just below the CFA, and rbp is
 * either untouched or saved at the CFA plus an offset. That is all a walk
 * needs on x86-64, so each return address is looked up once, through
 * elfutils' libdw, and its rule kept in a lock-free table: after the
 * first few requests a frame costs a hash probe and two loads, where
 * libunwind's unw_backtrace pays a context save and cursor set-up per
 * walk on top (see BENCHMARKS.md). A rule this walker cannot follow (a
 * signal frame's expression, code without tables, the outermost frame)
 * ends the walk there.
 *
 * Every load is checked to lie in the thread's own stack, between the
 * frame being walked and the stack's top, so a wrong rule or a corrupt
 * stack ends the walk, never the process.
 *
 * libdw allocates with malloc: when malloc is the lab heap (a preloaded
 * program), those allocations are charged to their site alone, as the
 * capture is busy (trace.c).
 */
#define _GNU_SOURCE
#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* A rule, packed into 64 bits: kind, rbp's rule, the CFA offset and
 * rbp's save offset. Kind 0 is "not cached yet". */
#define LAB__RULE_RSP 1u   /* CFA = rsp + off */
#define LAB__RULE_RBP 2u   /* CFA = rbp + off */
#define LAB__RULE_STOP 3u  /* the walk cannot go past this frame */
#define LAB__RBP_SAME 0u   /* rbp is the caller's */
#define LAB__RBP_SAVED 1u  /* the caller's rbp is at CFA + rbp_off */
#define LAB__RBP_LOST 2u   /* the caller's rbp cannot be known */

static inline uint64_t lab__rule_pack(unsigned kind, unsigned rbp, int32_t cfa_off,
                                      int16_t rbp_off) {
  return kind | (uint64_t)rbp << 2 | (uint64_t)(uint16_t)rbp_off << 16 |
         (uint64_t)(uint32_t)cfa_off << 32;
}

#define LAB__RULE_SLOTS 16384u /* cached return addresses, power of two */
#define LAB__RULE_PROBE 64u    /* slots tried before giving up on caching */

typedef struct lab__rule_slot {
  _Atomic uintptr_t pc;   /* the return address, 0: free */
  _Atomic uint64_t rule;  /* written before pc */
} lab__rule_slot_t;

static lab__rule_slot_t lab__rules[LAB__RULE_SLOTS];
static pthread_mutex_t lab__dw_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *lab__dwfl;

static char *lab__dw_debuginfo_path;
static const Dwfl_Callbacks lab__dw_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &lab__dw_debuginfo_path,
};

/* (Re)read this process's modules; under lab__dw_lock. */
static void lab__dw_report(void) {
  if (lab__dwfl) dwfl_end(lab__dwfl);
  lab__dwfl = dwfl_begin(&lab__dw_callbacks);
  if (!lab__dwfl) return;
  if (dwfl_linux_proc_report(lab__dwfl, getpid()) ||
      dwfl_report_end(lab__dwfl, NULL, NULL)) {
    dwfl_end(lab__dwfl);
    lab__dwfl = NULL;
  }
}

static Dwfl_Module *lab__dw_module(uintptr_t pc) {
  if (!lab__dwfl) lab__dw_report();
  Dwfl_Module *m = lab__dwfl ? dwfl_addrmodule(lab__dwfl, pc) : NULL;
  if (!m) { /* mapped since (dlopen): read the maps again */
    lab__dw_report();
    m = lab__dwfl ? dwfl_addrmodule(lab__dwfl, pc) : NULL;
  }
  return m;
}

/* A register's rule: LAB__RBP_* and, when saved, the offset from the CFA. */
static unsigned lab__dw_reg(Dwarf_Frame *f, int reg, int64_t *off) {
  Dwarf_Op mem[3], *ops;
  size_t n;
  if (dwarf_frame_register(f, reg, mem, &ops, &n) < 0) return LAB__RBP_LOST;
  if (!n) return ops ? LAB__RBP_LOST : LAB__RBP_SAME;
  if (n == 1 && ops[0].atom == DW_OP_call_frame_cfa) {
    *off = 0;
    return LAB__RBP_SAVED;
  }
  if (n == 2 && ops[0].atom == DW_OP_call_frame_cfa && ops[1].atom == DW_OP_plus_uconst) {
    *off = (int64_t)ops[1].number;
    return LAB__RBP_SAVED;
  }
  return LAB__RBP_LOST;
}

/* What the tables say for code address `at` (a return address minus
 * one: inside the call). Under lab__dw_lock. */
static uint64_t lab__dw_rule(uintptr_t at) {
  uint64_t stop = lab__rule_pack(LAB__RULE_STOP, 0, 0, 0);
  Dwfl_Module *m = lab__dw_module(at);
  Dwarf_Addr bias;
  Dwarf_CFI *cfi = m ? dwfl_module_eh_cfi(m, &bias) : NULL;
  if (!cfi && m) cfi = dwfl_module_dwarf_cfi(m, &bias);
  Dwarf_Frame *f;
  if (!cfi || dwarf_cfi_addrframe(cfi, at - bias, &f)) return stop;
  uint64_t rule = stop;
  Dwarf_Op *ops;
  size_t n;
  bool signal = false;
  dwarf_frame_info(f, NULL, NULL, &signal);
  int64_t ra_off = 1, rbp_off = 0;
  if (!signal && !dwarf_frame_cfa(f, &ops, &n) && n == 1 && ops[0].atom == DW_OP_bregx &&
      (ops[0].number == 7 || ops[0].number == 6) &&
      (int64_t)ops[0].number2 == (int32_t)ops[0].number2 &&
      lab__dw_reg(f, 16, &ra_off) == LAB__RBP_SAVED && ra_off == -8) {
    unsigned rbp = lab__dw_reg(f, 6, &rbp_off);
    if (rbp_off != (int16_t)rbp_off) rbp = LAB__RBP_LOST;
    rule = lab__rule_pack(ops[0].number == 7 ? LAB__RULE_RSP : LAB__RULE_RBP, rbp,
                          (int32_t)ops[0].number2, (int16_t)rbp_off);
  }
  free(f);
  return rule;
}

/* The rule for return address pc, cached. */
static uint64_t lab__rule_of(uintptr_t pc) {
  uint32_t k = (uint32_t)((pc * 0x9E3779B97F4A7C15ull) >> 48);
  for (uint32_t i = 0; i < LAB__RULE_PROBE; i++) {
    lab__rule_slot_t *s = &lab__rules[(k + i) & (LAB__RULE_SLOTS - 1)];
    uintptr_t at = atomic_load_explicit(&s->pc, memory_order_acquire);
    if (LAB__LIKELY(at == pc)) return atomic_load_explicit(&s->rule, memory_order_relaxed);
    if (!at) break;
  }
  pthread_mutex_lock(&lab__dw_lock);
  uint64_t rule = lab__dw_rule(pc - 1);
  for (uint32_t i = 0; i < LAB__RULE_PROBE; i++) {
    lab__rule_slot_t *s = &lab__rules[(k + i) & (LAB__RULE_SLOTS - 1)];
    uintptr_t at = atomic_load_explicit(&s->pc, memory_order_relaxed);
    if (at == pc) break; /* another thread was first */
    if (at) continue;
    atomic_store_explicit(&s->rule, rule, memory_order_relaxed);
    atomic_store_explicit(&s->pc, pc, memory_order_release);
    break;
  }
  /* A full neighbourhood leaves pc uncached: looked up again next time. */
  pthread_mutex_unlock(&lab__dw_lock);
  return rule;
}

/* This thread's stack, for the bounds of every load. */
static __thread uintptr_t lab__stack_lo, lab__stack_hi;

static void lab__stack_bounds(void) {
  pthread_attr_t a;
  void *lo = NULL;
  size_t n = 0;
  if (!pthread_getattr_np(pthread_self(), &a)) {
    pthread_attr_getstack(&a, &lo, &n);
    pthread_attr_destroy(&a);
  }
  lab__stack_lo = (uintptr_t)lo;
  lab__stack_hi = (uintptr_t)lo + n;
}

/* Whether [a, a + 8) is aligned and in the stack between sp and hi, its
 * top (read once per walk: hi is thread-local). */
static inline bool lab__on_stack(uintptr_t a, uintptr_t sp, uintptr_t hi) {
  return a >= sp && a + sizeof(uintptr_t) <= hi && !(a & 7);
}

/* Needs its own frame pointer: the build gives every function one
 * (-fno-omit-frame-pointer, alloc/CMakeLists.txt). */
__attribute__((noinline, no_sanitize_address)) int lab__unwind_tables(
    uintptr_t *out, int max, uintptr_t from, int skip) {
  if (LAB__UNLIKELY(!lab__stack_hi)) lab__stack_bounds();
  const uintptr_t hi = lab__stack_hi;
  /* This function's own frame, by its frame pointer: its caller's pc,
   * sp and rbp. */
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
  uintptr_t pc = (uintptr_t)__builtin_return_address(0);
  uintptr_t sp = fp + 2 * sizeof(uintptr_t);
  fp = *(const uintptr_t *)fp;
  int n = 0, limit = skip + max;
  while (n < limit && pc) {
    if (pc == from && n < skip) limit = n + max; /* the stack proper starts */
    out[n++] = pc;
    uint64_t rule = lab__rule_of(pc);
    unsigned kind = rule & 3, rbp = (rule >> 2) & 3;
    if (kind == LAB__RULE_STOP) break;
    uintptr_t cfa = (kind == LAB__RULE_RSP ? sp : fp) + (intptr_t)(int32_t)(rule >> 32);
    if (cfa <= sp || !lab__on_stack(cfa - sizeof(uintptr_t), sp, hi)) break;
    uintptr_t next = *(const uintptr_t *)(cfa - sizeof(uintptr_t));
    if (rbp == LAB__RBP_SAVED) {
      uintptr_t at = cfa + (intptr_t)(int16_t)(rule >> 16);
      if (!lab__on_stack(at, sp, hi)) break;
      fp = *(const uintptr_t *)at;
    } else if (rbp == LAB__RBP_LOST) {
      fp = 0;
    }
    sp = cfa;
    pc = next;
  }
  return n;
}

__attribute__((noinline, no_sanitize_address)) int lab__unwind_fp(uintptr_t *out, int max, uintptr_t from,
                                             int skip) {
  if (LAB__UNLIKELY(!lab__stack_hi)) lab__stack_bounds();
  const uintptr_t hi = lab__stack_hi;
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
  int n = 0, limit = skip + max;
  while (n < limit && lab__on_stack(fp + sizeof(uintptr_t), fp, hi)) {
    const uintptr_t *f = (const uintptr_t *)fp;
    if (!f[1]) break;
    if (f[1] == from && n < skip) limit = n + max;
    out[n++] = f[1];
    if (f[0] <= fp) break; /* the chain must go up the stack */
    fp = f[0];
  }
  return n;
}

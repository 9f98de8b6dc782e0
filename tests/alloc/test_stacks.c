/* Call stacks: with lab_config_t.stack_depth set, every allocation is
 * charged to its (site, stack) pair. One binary per unwinder: argv[1] is
 * "tables" (the unwind tables, the default), "fp" (the frame-pointer
 * chain) or "libunwind". */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <lab/alloc.h>
#include <lab/cjson.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>

static lab_site_t here_site = {__FILE__, "alloc_here", "stacks.here", 1, 0};
static lab_site_t other_site = {__FILE__, "test", "stacks.other", 2, 0};
static lab_site_t tree_site = {__FILE__, "parse_here", "stacks.tree", 3, 0};

static lab_unwind_t unwind_mode;

/* Where alloc_here's caller resumes, and where path_a's or path_b's
 * does: the second and third frames of its stacks. */
static volatile uintptr_t here_ra, path_ra;

__attribute__((noinline)) static void *alloc_here(size_t n) {
  here_ra = (uintptr_t)__builtin_return_address(0);
  void *p = lab_malloc_at(n, &here_site);
  __asm__ volatile("" ::: "memory"); /* no tail call */
  return p;
}
__attribute__((noinline)) static void *path_a(size_t n) {
  path_ra = (uintptr_t)__builtin_return_address(0);
  void *p = alloc_here(n);
  __asm__ volatile("" ::: "memory");
  return p;
}
__attribute__((noinline)) static void *path_b(size_t n) {
  path_ra = (uintptr_t)__builtin_return_address(0);
  void *p = alloc_here(n);
  __asm__ volatile("" ::: "memory");
  return p;
}

/* The stats of every stack, in a static array. */
static lab_stack_stats_t all[4096];
static size_t nall;
static void snap(void) {
  nall = lab_stack_stats(all, sizeof all / sizeof all[0]);
  assert_true(nall <= sizeof all / sizeof all[0]);
}
static const lab_stack_stats_t *by_id(uint32_t id) {
  for (size_t i = 0; i < nall; i++)
    if (all[i].id == id) return &all[i];
  return NULL;
}
/* The stack at site s whose second and third frames are ra and ra2. */
static const lab_stack_stats_t *by_caller(const lab_site_t *s, uintptr_t ra,
                                          uintptr_t ra2) {
  for (size_t i = 0; i < nall; i++)
    if (all[i].site == s && all[i].depth >= 3 && all[i].frames[1] == ra &&
        all[i].frames[2] == ra2)
      return &all[i];
  return NULL;
}

static bool in_function(uintptr_t a, const void *fn) {
  return a > (uintptr_t)fn && a < (uintptr_t)fn + 512;
}

static void one_site_reached_two_ways_is_two_stacks_of_that_site(void **state) {
  (void)state;
  void *a = path_a(100);
  uintptr_t ra_a = here_ra, pa = path_ra;
  void *b[2];
  for (volatile int i = 0; i < 2; i++) b[i] = path_b(30 + 10 * (size_t)i); /* one call site */
  uintptr_t ra_b = here_ra, pb = path_ra;
  snap();
  const lab_stack_stats_t *sa = by_caller(&here_site, ra_a, pa),
                          *sb = by_caller(&here_site, ra_b, pb);
  assert_non_null(sa);
  assert_non_null(sb);
  assert_int_not_equal(sa->id, sb->id);
  /* The first frame is the allocating call, in alloc_here, not the heap. */
  assert_true(in_function(sa->frames[0], (const void *)alloc_here));
  assert_int_equal(sa->frames[0], sb->frames[0]);
  assert_true(in_function(sa->frames[1], (const void *)path_a));
  assert_true(in_function(sb->frames[1], (const void *)path_b));
  assert_int_equal(sa->live_blocks, 1);
  assert_int_equal(sa->live_bytes, 100);
  /* The same path twice is one stack. */
  assert_int_equal(sb->live_blocks, 2);
  assert_int_equal(sb->live_bytes, 70);
  assert_int_equal(sb->total_allocs, 2);
  uint32_t depth = 0;
  assert_ptr_equal(lab_stack_frames(sb->id, &depth), sb->frames);
  assert_int_equal(depth, sb->depth);
  assert_true(depth <= LAB_STACK_DEPTH_DEFAULT);

  /* The site's figures are its stacks' summed. */
  lab_site_stats_t sites[256];
  size_t ns = lab_site_stats(sites, 256);
  uint64_t site_live = 0;
  for (size_t i = 0; i < ns && i < 256; i++)
    if (sites[i].site == &here_site) site_live = sites[i].live_bytes;
  uint64_t stacks_live = 0;
  for (size_t i = 0; i < nall; i++)
    if (all[i].site == &here_site) stacks_live += all[i].live_bytes;
  assert_int_equal(site_live, stacks_live);

  lab_free_at(b[0], &other_site);
  snap();
  sb = by_caller(&here_site, ra_b, pb);
  assert_non_null(sb);
  assert_int_equal(sb->live_blocks, 1);
  assert_int_equal(sb->live_bytes, 40);
  lab_free_at(a, &other_site);
  lab_free_at(b[1], &other_site);
}

static void a_fault_is_charged_to_the_stack_of_the_block(void **state) {
  (void)state;
  void *p = path_a(24);
  uintptr_t ra = here_ra, pa = path_ra;
  lab_free_at(p, &other_site);
  lab_free_at(p, &other_site); /* double free: caught, skipped */
  snap();
  const lab_stack_stats_t *s = by_caller(&here_site, ra, pa);
  assert_non_null(s);
  assert_true(s->errors[LAB_FAULT_double_free] >= 1);
}

/* cJSON, as Debian builds it, has no frame pointers: the unwind tables
 * still lead from its allocations back to the caller of cJSON_Parse. */
__attribute__((noinline)) static cJSON *parse_here(const char *doc) {
  const lab_site_t *old = lab_hook_site(&tree_site);
  cJSON *j = cJSON_Parse(doc);
  lab_hook_site(old);
  __asm__ volatile("" ::: "memory");
  return j;
}

static void a_stack_through_code_without_frame_pointers_reaches_its_caller(void **state) {
  (void)state;
  lab_cjson_install();
  cJSON *j = parse_here("{\"a\":[1,2,{\"b\":\"c\"}],\"d\":\"e\"}");
  assert_non_null(j);
  snap();
  size_t stacks = 0, through = 0;
  for (size_t i = 0; i < nall; i++) {
    if (all[i].site != &tree_site || !all[i].live_blocks) continue;
    stacks++;
    for (uint32_t f = 0; f < all[i].depth; f++)
      if (in_function(all[i].frames[f], (const void *)parse_here)) {
        through++;
        break;
      }
  }
  /* Nodes and strings are allocated from several places in cJSON. */
  assert_true(stacks >= 2);
  if (unwind_mode != LAB_UNWIND_FP) assert_int_equal(through, stacks);
  cJSON_Delete(j);
}

/* A cJSON malloc hook that also asks libunwind for the stack. */
static lab_site_t hook_site = {__FILE__, "hook_malloc", "stacks.hook", 4, 0};
static void *unw_frames[LAB_STACK_DEPTH_DEFAULT + 1];
static int unw_depth;
__attribute__((noinline)) static void *hook_malloc(size_t n) {
  unw_depth = unw_backtrace(unw_frames, LAB_STACK_DEPTH_DEFAULT + 1);
  void *p = lab_malloc_at(n, &hook_site);
  __asm__ volatile("" ::: "memory");
  return p;
}

static void the_tables_walk_the_same_frames_as_libunwind(void **state) {
  (void)state;
  /* The frame-pointer chain stops in cJSON (Debian's has none). */
  if (unwind_mode == LAB_UNWIND_FP) skip();
  /* libunwind probes addresses with write(2), which memcheck reports. */
  const char *pre = getenv("LD_PRELOAD");
  if (pre && strstr(pre, "vgpreload")) skip();
  cJSON_Hooks hooks = {hook_malloc, lab_hook_free};
  cJSON_InitHooks(&hooks);
  /* The last allocation of a parse: its stack is the one unw_frames
   * holds. A string value is allocated deep in the parser. */
  cJSON *j = cJSON_Parse("[[[{\"k\":[\"deep string\"]}]]]");
  assert_non_null(j);
  lab_cjson_install();
  snap();
  const lab_stack_stats_t *s = NULL;
  for (size_t i = 0; i < nall; i++)
    if (all[i].site == &hook_site && all[i].depth >= 2 &&
        all[i].frames[1] == (uintptr_t)unw_frames[1])
      s = &all[i];
  assert_non_null(s);
  /* Frame 0 differs (the hook's two calls); from frame 1 on, each. */
  assert_true(unw_depth >= 6); /* cJSON's frames, this test, cmocka, main */
  int same = (int)s->depth < unw_depth ? (int)s->depth : unw_depth;
  for (int f = 1; f < same; f++) assert_int_equal(s->frames[f], (uintptr_t)unw_frames[f]);
  assert_int_equal(s->depth, unw_depth < LAB_STACK_DEPTH_DEFAULT ? unw_depth : LAB_STACK_DEPTH_DEFAULT);
  cJSON_Delete(j);
}

/* Threads that meet the same new stacks at once each count once into
 * the one stack the table keeps for it. */
#define RACERS 4
#define RACE_ALLOCS 2000
static lab_site_t race_site = {__FILE__, "racer", "stacks.race", 5, 0};
__attribute__((noinline)) static void *race_alloc(int k) {
  void *p = k & 1 ? lab_malloc_at(8, &race_site) : lab_malloc_at(16, &race_site);
  __asm__ volatile("" ::: "memory");
  return p;
}
static void *racer(void *arg) {
  void **keep = arg;
  for (volatile int i = 0; i < RACE_ALLOCS; i++) keep[i] = race_alloc(i);
  return NULL;
}

static void threads_meeting_the_same_stacks_share_them(void **state) {
  (void)state;
  /* Above a frame without a frame pointer (a thread's start under TSan)
   * the chain is whatever rbp held: the FP walk makes no promise there. */
  if (unwind_mode == LAB_UNWIND_FP) skip();
#if defined(__SANITIZE_THREAD__)
  /* libunwind's walk in new threads hangs under TSan's runtime. */
  if (unwind_mode == LAB_UNWIND_LIBUNWIND) skip();
#endif
  static void *kept[RACERS][RACE_ALLOCS];
  pthread_t t[RACERS];
  for (int i = 0; i < RACERS; i++) assert_int_equal(pthread_create(&t[i], NULL, racer, kept[i]), 0);
  for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
  snap();
  uint64_t blocks = 0, bytes = 0;
  size_t stacks = 0;
  for (size_t i = 0; i < nall; i++) {
    if (all[i].site != &race_site) continue;
    stacks++;
    blocks += all[i].live_blocks;
    bytes += all[i].live_bytes;
  }
  /* Two call lines in race_alloc, one path above them. */
  assert_int_equal(stacks, 2);
  assert_int_equal(blocks, RACERS * RACE_ALLOCS);
  assert_int_equal(bytes, RACERS * RACE_ALLOCS / 2 * (8 + 16));
  for (int i = 0; i < RACERS; i++)
    for (int k = 0; k < RACE_ALLOCS; k++) lab_free_at(kept[i][k], &other_site);
}

static void an_unknown_stack_id_has_no_frames(void **state) {
  (void)state;
  uint32_t depth = 7;
  assert_null(lab_stack_frames(0, &depth));
  assert_int_equal(depth, 0);
  assert_null(lab_stack_frames(UINT32_MAX, &depth));
  assert_null(lab_stack_frames(1, &depth)); /* a site alone */
  assert_int_equal(lab_stack_dropped(), 0);
  (void)by_id;
}

static void the_stacks_read_in_pieces_are_the_stacks_read_at_once(void **state) {
  (void)state;
  void *p[8];
  for (int i = 0; i < 8; i++) p[i] = i % 2 ? path_a(16 + (size_t)i) : path_b(16 + (size_t)i);
  snap();
  assert_true(nall >= 2);
  static lab_stack_stats_t piece[3];
  uint32_t cursor = 0;
  size_t seen = 0, got;
  while ((got = lab_stack_stats_next(&cursor, piece, 3)) > 0) {
    assert_true(got <= 3);
    for (size_t k = 0; k < got; k++, seen++) {
      assert_true(seen < nall);
      assert_int_equal(piece[k].id, all[seen].id);
      assert_int_equal(piece[k].live_bytes, all[seen].live_bytes);
      assert_ptr_equal(piece[k].frames, all[seen].frames);
    }
    assert_int_equal(cursor, piece[got - 1].id);
  }
  assert_int_equal(seen, nall);
  assert_int_equal(lab_stack_stats_next(&cursor, piece, 0), 0);
  for (int i = 0; i < 8; i++) lab_free(p[i]);
}

static void settings_that_cannot_change_once_running_are_refused(void **state) {
  (void)state;
  lab_config_t c = {.stack_depth = LAB_STACK_DEPTH_MAX + 1};
  assert_int_equal(lab_init(&c), LAB_EINVAL);
  c = (lab_config_t){.stack_depth = 4, .unwind = unwind_mode};
  assert_int_equal(lab_init(&c), LAB_EBUSY);
  c = (lab_config_t){.stack_depth = LAB_STACK_DEPTH_DEFAULT, .unwind = (lab_unwind_t)9};
  assert_int_equal(lab_init(&c), LAB_EINVAL);
}

int main(int argc, char **argv) {
  unwind_mode = argc > 1 && !strcmp(argv[1], "fp")          ? LAB_UNWIND_FP
                : argc > 1 && !strcmp(argv[1], "libunwind") ? LAB_UNWIND_LIBUNWIND
                                                            : LAB_UNWIND_TABLES;
  lab_config_t c = {.stack_depth = LAB_STACK_DEPTH_DEFAULT, .unwind = unwind_mode};
  if (lab_init(&c) != LAB_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_site_reached_two_ways_is_two_stacks_of_that_site),
      cmocka_unit_test(a_fault_is_charged_to_the_stack_of_the_block),
      cmocka_unit_test(a_stack_through_code_without_frame_pointers_reaches_its_caller),
      cmocka_unit_test(an_unknown_stack_id_has_no_frames),
      cmocka_unit_test(the_tables_walk_the_same_frames_as_libunwind),
      cmocka_unit_test(threads_meeting_the_same_stacks_share_them),
      cmocka_unit_test(the_stacks_read_in_pieces_are_the_stacks_read_at_once),
      cmocka_unit_test(settings_that_cannot_change_once_running_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

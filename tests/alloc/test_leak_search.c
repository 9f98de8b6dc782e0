/* Under memcheck, a lost structure on the lab heap is lost to its last
 * block, as it would be on malloc: memcheck does not scan the heap's
 * memory as a root (alloc/src/os.c), so neither the lost blocks' own words
 * nor the heap's records of them (a closed scope's array) keep any of them
 * reachable. Each test asks memcheck for a summary leak search (no
 * errors counted) and compares its counts before and after; outside
 * memcheck the tests are skipped. The structure's root is kept XOR-ed,
 * where memcheck cannot see it, and restored to free it all at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lab/alloc.h>

#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK 1
#else
#define HAVE_MEMCHECK 0
#endif

static lab_site_t node_site = {__FILE__, "build", "node", 1, 0};

#define HIDE 0x5A5A5A5A5A5A5A5Aull
#define LARGE (256u << 10) /* a block of a mapping of its own */

typedef struct node {
  struct node *next, *back; /* a chain, with a cycle as cJSON's has */
  char pad[48];
} node_t;

/* What memcheck's leak search finds, in blocks and bytes. */
typedef struct counts {
  unsigned long lost, lost_bytes;           /* definitely + indirectly */
  unsigned long dubious, reachable, suppressed, bytes_other;
} counts_t;

static volatile uintptr_t hidden;  /* the root, XOR HIDE */
static node_t *volatile shown;     /* the root, where memcheck sees it */

static void skip_unless_memcheck(void) {
#if HAVE_MEMCHECK
  if (RUNNING_ON_VALGRIND) return;
#endif
  skip();
}

static __attribute__((noinline)) counts_t leak_search(void) {
  counts_t c = {0};
#if HAVE_MEMCHECK
  unsigned long b_dub = 0, b_reach = 0, b_supp = 0;
  VALGRIND_DO_QUICK_LEAK_CHECK;
  VALGRIND_COUNT_LEAK_BLOCKS(c.lost, c.dubious, c.reachable, c.suppressed);
  VALGRIND_COUNT_LEAKS(c.lost_bytes, b_dub, b_reach, b_supp);
  c.bytes_other = b_dub + b_reach + b_supp;
#endif
  return c;
}

/* A chain of n small nodes ending in a large block, allocated in a scope
 * that is closed without reclaim; its root is left in `hidden` or in
 * `shown`. Returns its bytes. */
static __attribute__((noinline)) size_t build(int n, bool hide) {
  lab_scope_t *s = lab_scope_open("build");
  node_t *root = NULL, *last = NULL;
  for (int i = 0; i < n; i++) {
    node_t *x = lab_calloc_at(1, sizeof *x, &node_site);
    if (last) last->next = x;
    else root = x;
    x->back = last ? last : x;
    last = x;
  }
  last->next = lab_calloc_at(1, LARGE, &node_site);
  root->back = last;
  lab_scope_close(s, 0, NULL);
  if (hide) hidden = (uintptr_t)root ^ HIDE;
  else shown = root;
  return (size_t)n * sizeof(node_t) + LARGE;
}

/* Free what build(n, ...) made. */
static __attribute__((noinline)) void free_chain(node_t *root, int n) {
  void *x = root;
  for (int i = 0; i < n; i++) {
    void *next = ((node_t *)x)->next;
    lab_free(x);
    x = next;
  }
  lab_free(x); /* the large block */
}

static void a_lost_chain_is_lost_to_its_last_block(void **state) {
  (void)state;
  skip_unless_memcheck();
  counts_t c0 = leak_search();
  size_t bytes = build(20, true);
  counts_t c = leak_search();
  assert_int_equal(c.lost - c0.lost, 21);
  assert_int_equal(c.lost_bytes - c0.lost_bytes, bytes);
  assert_int_equal(c.dubious, c0.dubious);
  free_chain((node_t *)(hidden ^ HIDE), 20);
  hidden = 0;
  c = leak_search();
  assert_int_equal(c.lost, c0.lost);
  assert_int_equal(c.lost_bytes, c0.lost_bytes);
}

static void a_chain_the_program_still_holds_is_reachable(void **state) {
  (void)state;
  skip_unless_memcheck();
  counts_t c0 = leak_search();
  build(20, false);
  counts_t c = leak_search();
  assert_int_equal(c.lost, c0.lost);
  assert_int_equal(c.dubious, c0.dubious);
  assert_true(c.reachable - c0.reachable >= 21);
  free_chain(shown, 20);
  shown = NULL;
  c = leak_search();
  assert_int_equal(c.lost, c0.lost);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_lost_chain_is_lost_to_its_last_block),
      cmocka_unit_test(a_chain_the_program_still_holds_is_reachable),
  };
  return cmocka_run_group_tests_name("leak_search", tests, NULL, NULL);
}

/* lab_check() beside other threads: it finds nothing on a correct program
 * while another thread frees (and its quarantine rewrites) the caller's
 * blocks, and a real write after free is still found, by lab_check() in
 * the quarantine that holds the block or when that quarantine evicts it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "deliberate.h"
#include "events.h"

static lab_site_t block_site = {__FILE__, "producer", "checked-block", 1, 0};
static lab_site_t free_site = {__FILE__, "consumer", "remote-free", 2, 0};

static int setup(void **state) {
  (void)state;
  lab_flush_quarantine();
  events_reset();
  return 0;
}

/* ---- a producer that checks, a consumer that frees ---- */

#define RING 64 /* blocks in flight between the two threads */

typedef struct pipe_ {
  _Atomic(char *) slot[RING];
  _Atomic unsigned long head, tail; /* produced, consumed */
  _Atomic bool done;
} pipe_t;

static void *consumer(void *arg) {
  pipe_t *q = arg;
  for (;;) {
    unsigned long t = atomic_load(&q->tail);
    if (t == atomic_load(&q->head)) {
      if (atomic_load(&q->done) && t == atomic_load(&q->head)) return NULL;
      sched_yield();
      continue;
    }
    char *p = atomic_exchange(&q->slot[t % RING], NULL);
    atomic_store(&q->tail, t + 1);
    lab_free_at(p, &free_site);
  }
}

/* The repro from review: before the fix, lab_check() judged the blocks
 * waiting in the consumer's quarantine, whose evictions rewrite them as
 * it reads, and reported thousands of writes after free at offset 0. */
static void a_heap_check_beside_a_thread_freeing_our_blocks_finds_nothing(void **state) {
  (void)state;
  enum { BLOCKS = 20000 };
  static pipe_t q;
  memset(&q, 0, sizeof q);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, consumer, &q), 0);
  size_t found = 0, checks = 0;
  for (unsigned long i = 0; i < BLOCKS; i++) {
    char *p = lab_malloc_at(8000, &block_site);
    memset(p, (int)(i & 0x7F), 8000); /* a correct program uses its blocks */
    /* Check while waiting for room; every lab_check is one more chance
     * to see the consumer's evictions half done. */
    do {
      found += lab_check();
      checks++;
    } while (atomic_load(&q.head) - atomic_load(&q.tail) >= RING);
    atomic_store(&q.slot[i % RING], p);
    atomic_store(&q.head, i + 1);
  }
  atomic_store(&q.done, true);
  pthread_join(t, NULL);
  print_message("%zu findings in %zu checks\n", found, checks);
  assert_int_equal(found, 0);
  assert_int_equal(events.n, 0);
}

/* ---- a real write after free is still found ---- */

typedef struct handoff {
  pthread_barrier_t step;
  char *p; /* the block, set before a barrier */
} handoff_t;

/* Allocate a block, then stay alive (owning its page) until released. */
static void *allocate_and_wait(void *arg) {
  handoff_t *h = arg;
  h->p = lab_malloc_at(64, &block_site);
  pthread_barrier_wait(&h->step); /* the block is there */
  pthread_barrier_wait(&h->step); /* the test is done with this thread */
  return NULL;
}

/* The block lives on another running thread's page but sits in the
 * caller's quarantine, so it is the caller's to check. Before the fix
 * lab_check() looked only at the caller's pages and missed it. */
static void a_write_after_free_in_our_quarantine_is_found_on_any_threads_page(void **state) {
  (void)state;
  handoff_t h = {0};
  pthread_barrier_init(&h.step, NULL, 2);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, allocate_and_wait, &h), 0);
  pthread_barrier_wait(&h.step);
  char *p = h.p;
  lab_free_at(p, &free_site);
  DELIBERATE(p[10] = 'w');
  assert_int_equal(lab_check(), 1);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_ptr_equal(events.ev[0].alloc_site, &block_site);
  assert_ptr_equal(events.ev[0].free_site, &free_site);
  assert_int_equal(events.ev[0].offset, 10);
  /* The eviction finds it too, as it always did. */
  lab_flush_quarantine();
  assert_int_equal(events.n, 2);
  assert_int_equal(events.ev[1].kind, LAB_FAULT_use_after_free);
  assert_int_equal(events.ev[1].offset, 10);
  pthread_barrier_wait(&h.step);
  pthread_join(t, NULL);
  pthread_barrier_destroy(&h.step);
}

/* Free a block handed over, then flush the quarantine when told to. */
static void *free_then_flush(void *arg) {
  handoff_t *h = arg;
  pthread_barrier_wait(&h->step); /* the block is there */
  lab_free_at(h->p, &free_site);
  pthread_barrier_wait(&h->step); /* freed */
  pthread_barrier_wait(&h->step); /* written after free */
  lab_flush_quarantine();
  return NULL;
}

/* The block is on the caller's page but in another running thread's
 * quarantine: that thread checks it when it evicts it. */
static void a_write_after_free_in_another_threads_quarantine_is_caught_at_eviction(void **state) {
  (void)state;
  handoff_t h = {0};
  pthread_barrier_init(&h.step, NULL, 2);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, free_then_flush, &h), 0);
  h.p = lab_malloc_at(64, &block_site);
  pthread_barrier_wait(&h.step);
  pthread_barrier_wait(&h.step);
  DELIBERATE(h.p[20] = 'w');
  pthread_barrier_wait(&h.step);
  pthread_join(t, NULL);
  pthread_barrier_destroy(&h.step);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_ptr_equal(events.ev[0].alloc_site, &block_site);
  assert_ptr_equal(events.ev[0].free_site, &free_site);
  assert_string_equal(events.ev[0].site->func, "quarantine");
  assert_int_equal(events.ev[0].offset, 20);
}

/* Free a block and exit, leaving it in the quarantine of a dead heap. */
static void *free_and_exit(void *arg) {
  handoff_t *h = arg;
  h->p = lab_malloc_at(64, &block_site);
  lab_free_at(h->p, &free_site);
  return NULL;
}

/* An exited thread's quarantine has nobody to evict it soon: lab_check()
 * looks at it. */
static void a_write_after_free_in_an_exited_threads_quarantine_is_found(void **state) {
  (void)state;
  handoff_t h = {0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, free_and_exit, &h), 0);
  pthread_join(t, NULL);
  DELIBERATE(h.p[30] = 'w');
  assert_int_equal(lab_check(), 1);
  assert_int_equal(events.n, 1);
  assert_int_equal(events.ev[0].kind, LAB_FAULT_use_after_free);
  assert_ptr_equal(events.ev[0].free_site, &free_site);
  assert_int_equal(events.ev[0].offset, 30);
  /* Undo it, so the thread that adopts that heap evicts a clean block. */
  DELIBERATE(h.p[30] = (char)LAB_FILL_FREE);
  assert_int_equal(lab_check(), 0);
}

static void at_the_end_live_bytes_is_zero(void **state) {
  (void)state;
  assert_int_equal(live_bytes(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(a_heap_check_beside_a_thread_freeing_our_blocks_finds_nothing, setup),
      cmocka_unit_test_setup(a_write_after_free_in_our_quarantine_is_found_on_any_threads_page, setup),
      cmocka_unit_test_setup(a_write_after_free_in_another_threads_quarantine_is_caught_at_eviction, setup),
      cmocka_unit_test_setup(a_write_after_free_in_an_exited_threads_quarantine_is_found, setup),
      cmocka_unit_test(at_the_end_live_bytes_is_zero),
  };
  return cmocka_run_group_tests_name("check", tests, NULL, NULL);
}

/* Four threads, a million operations each, freeing each other's blocks
 * through a shared exchange: accounting stays exact (and TSan stays quiet
 * in the tsan preset). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "events.h"

#define THREADS 4
#define OPS 1000000
#define WINDOW 256
#define MAILBOX 64

static _Atomic(char *) mailbox[MAILBOX]; /* blocks passed between threads */
static lab_site_t thread_site = {__FILE__, "worker", "thread-site", 1, 0};

typedef struct worker {
  unsigned id;
  uint64_t allocs, frees, bytes_in, bytes_out;
} worker_t;

static size_t size_of_block(const char *p) {
  size_t n;
  memcpy(&n, p, sizeof n);
  return n;
}

static char *make_block(worker_t *w, uint64_t r) {
  size_t n = sizeof(size_t) + (r >> 16) % ((r & 63) ? 700 : 20000);
  char *p = lab_malloc_at(n, &thread_site);
  memcpy(p, &n, sizeof n);
  w->allocs++;
  w->bytes_in += n;
  return p;
}

static void drop_block(worker_t *w, char *p) {
  size_t n = size_of_block(p);
  assert_int_equal(lab_usable_size(p), n);
  lab_free(p);
  w->frees++;
  w->bytes_out += n;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  char *win[WINDOW] = {0};
  uint64_t r = 0x2545F4914F6CDD1Dull * (w->id + 1);
  for (int i = 0; i < OPS; i++) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    size_t k = r % WINDOW;
    if (win[k]) drop_block(w, win[k]);
    win[k] = make_block(w, r);
    if ((r & 15) == 0) {
      /* Swap a block with whatever another thread left in the mailbox. */
      char *mine = make_block(w, r >> 3);
      char *theirs = atomic_exchange(&mailbox[(r >> 40) % MAILBOX], mine);
      if (theirs) drop_block(w, theirs);
    }
  }
  for (size_t k = 0; k < WINDOW; k++)
    if (win[k]) drop_block(w, win[k]);
  return NULL;
}

static void four_threads_keep_accounting_exact(void **state) {
  (void)state;
  events_reset();
  lab_stats_t st0, st;
  lab_stats(&st0);
  lab_site_stats_t s0 = site_stats(&thread_site);
  pthread_t t[THREADS];
  worker_t w[THREADS];
  for (unsigned i = 0; i < THREADS; i++) {
    w[i] = (worker_t){.id = i};
    assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (unsigned i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  uint64_t allocs = 0, frees = 0, in = 0, out = 0;
  for (unsigned i = 0; i < THREADS; i++) {
    allocs += w[i].allocs;
    frees += w[i].frees;
    in += w[i].bytes_in;
    out += w[i].bytes_out;
  }
  uint64_t boxed = 0, boxed_bytes = 0;
  for (unsigned i = 0; i < MAILBOX; i++) {
    char *p = atomic_load(&mailbox[i]);
    if (p) {
      boxed++;
      boxed_bytes += size_of_block(p);
    }
  }
  lab_stats(&st);
  assert_int_equal(st.total_allocs - st0.total_allocs, allocs);
  assert_int_equal(st.total_frees - st0.total_frees, frees);
  assert_int_equal(st.live_blocks - st0.live_blocks, boxed);
  assert_int_equal(st.live_bytes - st0.live_bytes, in - out);
  assert_int_equal(in - out, boxed_bytes);
  lab_site_stats_t s = site_stats(&thread_site);
  assert_int_equal(s.total_allocs - s0.total_allocs, allocs);
  assert_int_equal(s.live_bytes - s0.live_bytes, boxed_bytes);
  for (unsigned i = 0; i < MAILBOX; i++) {
    char *p = atomic_exchange(&mailbox[i], NULL);
    if (p) lab_free(p);
  }
  assert_int_equal(live_bytes(), st0.live_bytes);
  assert_int_equal(events.n, 0);
  /* Heaps of exited threads were checked too: nothing is damaged. */
  assert_int_equal(lab_check(), 0);
}

static void a_new_thread_adopts_an_exited_threads_heap(void **state) {
  (void)state;
  lab_stats_t st0, st;
  lab_stats(&st0);
  pthread_t t;
  worker_t w = {.id = 9};
  assert_int_equal(pthread_create(&t, NULL, worker_main, &w), 0);
  pthread_join(t, NULL);
  lab_stats(&st);
  /* No new heap: the worker reused one left by a dead thread. */
  assert_int_equal(st.heaps, st0.heaps);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(four_threads_keep_accounting_exact),
      cmocka_unit_test(a_new_thread_adopts_an_exited_threads_heap),
  };
  return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}

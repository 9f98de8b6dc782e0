/* core/shm: the shared region every module keeps its block in, so a
 * supervisor and its workers see the same flags, counters and history;
 * and the sequenced slots readers use without blocking the writer. */
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/shm.h"
#include "unit.h"

static int destroy_region(void **state) {
  (void)state;
  srv_shm_destroy();
  return 0;
}

static void blocks_are_aligned_to_a_cache_line_and_do_not_overlap(
    void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 20), SRV_OK);
  char *prev = NULL;
  size_t prev_n = 0;
  size_t sizes[] = {1, 63, 64, 65, 7, 200, 0, 3};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = srv_shm_alloc(sizes[i]);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    if (prev) assert_true(p >= prev + prev_n);
    prev = p;
    prev_n = sizes[i];
  }
}

static void blocks_come_zeroed(void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 20), SRV_OK);
  unsigned char *p = srv_shm_alloc(100000);
  assert_non_null(p);
  for (size_t i = 0; i < 100000; i++) assert_int_equal(p[i], 0);
}

static void a_full_region_returns_null_and_stays_usable_up_to_its_end(
    void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(4096), SRV_OK);
  size_t used = srv_shm_used();
  assert_true(used > 0 && used < 4096); /* the region's own header */
  assert_null(srv_shm_alloc(4096));
  assert_int_equal(srv_shm_used(), used);
  char *p = srv_shm_alloc(4096 - used);
  assert_non_null(p);
  p[4096 - used - 1] = 1; /* the last byte is ours */
  assert_int_equal(srv_shm_used(), 4096);
  assert_null(srv_shm_alloc(1));
}

static void a_size_that_overflows_its_rounding_returns_null(void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  size_t used = srv_shm_used();
  assert_null(srv_shm_alloc(SIZE_MAX));
  assert_null(srv_shm_alloc(SIZE_MAX - 62));
  assert_int_equal(srv_shm_used(), used);
}

static void without_a_region_nothing_is_handed_out(void **state) {
  (void)state;
  srv_shm_destroy();
  assert_null(srv_shm_alloc(64));
  assert_int_equal(srv_shm_used(), 0);
  assert_int_equal(srv_shm_started_ms(), 0);
}

static void the_region_remembers_when_it_was_made(void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(0), SRV_OK);
  assert_true(srv_shm_started_ms() > 1600000000000ull); /* after 2020 */
}

static void a_block_written_in_a_child_process_is_seen_by_its_parent(
    void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  _Atomic uint64_t *word = srv_shm_alloc(sizeof *word);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    atomic_store(word, 0xfeedull);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(atomic_load(word), 0xfeedull);
}

/* A process-shared lock in a fresh region, and a child that takes it and
 * then dies (stop false) or stops itself, as a hung worker (stop true). */
static pid_t child_holding(pthread_mutex_t **out, bool stop) {
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  pthread_mutex_t *m = srv_shm_alloc(sizeof *m);
  assert_int_equal(srv_shm_mutex_init(m), SRV_OK);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    srv_shm_mutex_lock(m);
    if (stop) raise(SIGSTOP);
    _exit(0); /* dies holding it */
  }
  *out = m;
  return pid;
}

static void a_lock_held_by_a_process_that_died_is_taken_over(void **state) {
  (void)state;
  pthread_mutex_t *m;
  pid_t pid = child_holding(&m, false);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  srv_shm_mutex_lock(m); /* would hang without the robust recovery */
  srv_shm_mutex_unlock(m);
  srv_shm_mutex_lock(m); /* and it is consistent again */
  srv_shm_mutex_unlock(m);
}

static void a_lock_held_by_a_stopped_process_is_not_waited_for(void **state) {
  (void)state;
  pthread_mutex_t *m;
  pid_t pid = child_holding(&m, true);
  int status;
  assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
  assert_true(WIFSTOPPED(status));
  assert_false(srv_shm_mutex_trylock(m));
  kill(pid, SIGKILL);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(srv_shm_mutex_trylock(m)); /* its holder is dead: taken over */
  assert_false(srv_shm_mutex_trylock(m)); /* and held */
  srv_shm_mutex_unlock(m);
  assert_true(srv_shm_mutex_trylock(m));
  srv_shm_mutex_unlock(m);
}

/* ---- sequenced slots ---- */

/* A record whose size is not a multiple of 8. */
typedef struct rec {
  uint64_t a;
  uint32_t b;
  char c[7];
} rec_t;

SRV_SHM_SLOT(rec_slot, rec_t);

static void a_record_written_to_a_slot_reads_back_whole(void **state) {
  (void)state;
  struct rec_slot s;
  memset(&s, 0, sizeof s);
  rec_t in = {0x0102030405060708ull, 0xa1b2c3d4u, "abcdef"}, out;
  srv_shm_slot_write(&s.head, s.w, &in, sizeof in, 5);
  memset(&out, 0xee, sizeof out);
  assert_true(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 5));
  assert_memory_equal(&in, &out, sizeof in);
  assert_int_equal(atomic_load(&s.head.seq), 10);
}

static void a_read_for_another_tag_returns_false(void **state) {
  (void)state;
  struct rec_slot s;
  memset(&s, 0, sizeof s);
  rec_t in = {1, 2, "x"}, out;
  srv_shm_slot_write(&s.head, s.w, &in, sizeof in, 3);
  assert_false(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 2));
  assert_false(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 4));
  /* Overwritten by a newer record: the old tag is gone. */
  srv_shm_slot_write(&s.head, s.w, &in, sizeof in, 3 + 64);
  assert_false(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 3));
  assert_true(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 3 + 64));
}

static void a_slot_being_written_is_not_read(void **state) {
  (void)state;
  struct rec_slot s;
  memset(&s, 0, sizeof s);
  rec_t in = {1, 2, "x"}, out;
  srv_shm_slot_write(&s.head, s.w, &in, sizeof in, 7);
  srv_shm_slot_begin(&s.head, 8); /* odd: record 8 on its way */
  assert_int_equal(atomic_load(&s.head.seq), 15);
  assert_false(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 7));
  assert_false(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 8));
  srv_shm_slot_write(&s.head, s.w, &in, sizeof in, 8);
  assert_true(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 8));
}

static void a_slot_being_written_by_a_live_process_is_not_abandoned(
    void **state) {
  (void)state;
  struct rec_slot s;
  memset(&s, 0, sizeof s);
  srv_shm_slot_begin(&s.head, 3);
  assert_false(srv_shm_slot_abandoned(&s.head, 3));
  rec_t in = {1, 2, "x"};
  srv_shm_slot_write(&s.head, s.w, &in, sizeof in, 3);
  assert_false(srv_shm_slot_abandoned(&s.head, 3));
}

static void a_slot_left_half_written_by_a_dead_process_is_abandoned(
    void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  struct rec_slot *s = srv_shm_alloc(sizeof *s);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    srv_shm_slot_begin(&s->head, 4);
    _exit(0); /* killed mid-write, as it were */
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(srv_shm_slot_abandoned(&s->head, 4));
  assert_false(srv_shm_slot_abandoned(&s->head, 5)); /* another record */
  rec_t in = {9, 9, "y"}, out;
  assert_false(srv_shm_slot_read(&s->head, s->w, &out, sizeof out, 4));
  /* The next writer takes the slot over. */
  srv_shm_slot_write(&s->head, s->w, &in, sizeof in, 4);
  assert_true(srv_shm_slot_read(&s->head, s->w, &out, sizeof out, 4));
  assert_false(srv_shm_slot_abandoned(&s->head, 4));
}

static void an_empty_slot_holds_no_record(void **state) {
  (void)state;
  struct rec_slot s;
  memset(&s, 0, sizeof s);
  rec_t out;
  assert_false(srv_shm_slot_read(&s.head, s.w, &out, sizeof out, 1));
}

/* The module's invariant: destroying the region forgets every block. */
static void after_destroy_a_new_region_starts_empty(void **state) {
  (void)state;
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  size_t empty = srv_shm_used();
  uint64_t *p = srv_shm_alloc(1024);
  p[0] = 42;
  srv_shm_destroy();
  assert_int_equal(srv_shm_used(), 0);
  assert_int_equal(srv_shm_create(1 << 16), SRV_OK);
  assert_int_equal(srv_shm_used(), empty);
  uint64_t *q = srv_shm_alloc(1024);
  assert_int_equal(q[0], 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(
        blocks_are_aligned_to_a_cache_line_and_do_not_overlap, destroy_region),
    cmocka_unit_test_teardown(blocks_come_zeroed, destroy_region),
    cmocka_unit_test_teardown(
        a_full_region_returns_null_and_stays_usable_up_to_its_end,
        destroy_region),
    cmocka_unit_test_teardown(a_size_that_overflows_its_rounding_returns_null,
                              destroy_region),
    cmocka_unit_test(without_a_region_nothing_is_handed_out),
    cmocka_unit_test_teardown(the_region_remembers_when_it_was_made,
                              destroy_region),
    cmocka_unit_test_teardown(
        a_block_written_in_a_child_process_is_seen_by_its_parent,
        destroy_region),
    cmocka_unit_test_teardown(a_lock_held_by_a_stopped_process_is_not_waited_for,
                              destroy_region),
    cmocka_unit_test_teardown(a_lock_held_by_a_process_that_died_is_taken_over,
                              destroy_region),
    cmocka_unit_test(a_record_written_to_a_slot_reads_back_whole),
    cmocka_unit_test(a_read_for_another_tag_returns_false),
    cmocka_unit_test(a_slot_being_written_is_not_read),
    cmocka_unit_test(a_slot_being_written_by_a_live_process_is_not_abandoned),
    cmocka_unit_test_teardown(
        a_slot_left_half_written_by_a_dead_process_is_abandoned,
        destroy_region),
    cmocka_unit_test(an_empty_slot_holds_no_record),
    cmocka_unit_test_teardown(after_destroy_a_new_region_starts_empty,
                              destroy_region),
};

UNIT_MAIN("shm", tests)

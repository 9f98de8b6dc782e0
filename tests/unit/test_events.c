/* The event log: what /api/events walks, including after a writer was
 * killed in the middle of writing an event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/shm.h"
#include "observe/events.h"
#include "observe/workers.h"

static int setup(void **state) {
  (void)state;
  if (srv_shm_create(0) || srv_workers_setup() || srv_events_setup()) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  srv_shm_destroy();
  return 0;
}

typedef struct seen {
  uint64_t seqs[64];
  size_t n;
} seen_t;

static void collect(const srv_event_t *ev, void *ctx) {
  seen_t *s = ctx;
  if (s->n < 64) s->seqs[s->n++] = ev->seq;
}

static srv_events_walked_t walk(uint64_t since, seen_t *s) {
  srv_events_walked_t w;
  memset(s, 0, sizeof *s);
  srv_events_walk(since, srv_events_last(), 64, collect, s, &w);
  return w;
}

static void events_are_walked_oldest_first_after_since(void **state) {
  (void)state;
  for (int i = 0; i < 5; i++) srv_events_log(SRV_EVENT_flags, "change %d", i);
  seen_t s;
  srv_events_walked_t w = walk(2, &s);
  assert_int_equal(s.n, 3);
  assert_int_equal(s.seqs[0], 3);
  assert_int_equal(s.seqs[2], 5);
  assert_int_equal(w.sent, 3);
  assert_int_equal(w.dropped, 0);
}

static void a_walk_after_the_newest_event_or_the_largest_number_is_empty(void **state) {
  (void)state;
  seen_t s;
  srv_events_walked_t w = walk(srv_events_last(), &s);
  assert_int_equal(s.n, 0);
  assert_int_equal(w.dropped, 0);
  w = walk(UINT64_MAX, &s);
  assert_int_equal(s.n, 0);
  assert_int_equal(w.dropped, 0);
}

/* A child claims the next event and dies before finishing it, as a worker
 * killed inside the slot write does; everything logged after it must
 * still be listed, and the lost one counted as dropped. */
static void an_event_a_dead_writer_left_half_written_hides_nothing_after_it(void **state) {
  (void)state;
  uint64_t before = srv_events_last();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    srv_events_abandon_next();
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  srv_events_log(SRV_EVENT_crash, "the writer died");
  for (int i = 0; i < 3; i++) srv_events_log(SRV_EVENT_flags, "later %d", i);
  seen_t s;
  srv_events_walked_t w = walk(before, &s);
  assert_int_equal(s.n, 4);
  assert_int_equal(s.seqs[0], before + 2);
  assert_int_equal(s.seqs[3], before + 5);
  assert_int_equal(w.dropped, 1);
}

/* A slot being written by a live writer is not skipped: the walk stops
 * there, and the next walk from the same place picks it up. */
static void an_event_being_written_stops_the_walk_until_it_is_done(void **state) {
  (void)state;
  uint64_t before = srv_events_last();
  uint64_t seq = srv_events_abandon_next(); /* this process: alive */
  srv_events_log(SRV_EVENT_flags, "after");
  seen_t s;
  srv_events_walked_t w = walk(before, &s);
  assert_int_equal(s.n, 0);
  assert_int_equal(w.dropped, 0);
  assert_int_equal(seq, before + 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(events_are_walked_oldest_first_after_since),
      cmocka_unit_test(a_walk_after_the_newest_event_or_the_largest_number_is_empty),
      cmocka_unit_test(an_event_a_dead_writer_left_half_written_hides_nothing_after_it),
      cmocka_unit_test(an_event_being_written_stops_the_walk_until_it_is_done),
  };
  return cmocka_run_group_tests_name("events", tests, setup, teardown);
}

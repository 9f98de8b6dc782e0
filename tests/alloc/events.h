/* events.h - records the heap's detection events for assertions. */
#ifndef LAB_TEST_EVENTS_H
#define LAB_TEST_EVENTS_H

#include <lab/alloc.h>
#include <string.h>

#define EVENTS_MAX 64

typedef struct events {
  size_t n;
  lab_event_t ev[EVENTS_MAX];
} events_t;

static events_t events;

static void events_record(const lab_event_t *ev, void *ctx) {
  events_t *e = ctx;
  if (e->n < EVENTS_MAX) e->ev[e->n] = *ev;
  e->n++;
}

/* Start recording into `events` from scratch. */
static inline void events_reset(void) {
  memset(&events, 0, sizeof events);
  lab_set_event_callback(events_record, &events);
}

/* Live bytes right now. */
static inline uint64_t live_bytes(void) {
  lab_stats_t st;
  lab_stats(&st);
  return st.live_bytes;
}

/* Counter of one fault kind right now. */
static inline uint64_t fault_count(lab_fault_t k) {
  lab_stats_t st;
  lab_stats(&st);
  return st.errors[k];
}

/* Per-site stats of `site`, zeroed if not registered. */
static inline lab_site_stats_t site_stats(const lab_site_t *site) {
  static lab_site_stats_t all[4096];
  lab_site_stats_t none;
  memset(&none, 0, sizeof none);
  size_t n = lab_site_stats(all, 4096);
  for (size_t i = 0; i < n && i < 4096; i++)
    if (all[i].site == site) return all[i];
  return none;
}

#endif

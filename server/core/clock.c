/* clock.c - wall and monotonic clocks. */
#include "core/clock.h"

#include <time.h>

uint64_t srv_clock_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t srv_clock_now_ms(void) { return srv_clock_now_ns() / 1000000; }

uint64_t srv_clock_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

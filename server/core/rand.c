/* rand.c - xorshift64*, one state per thread, seeded from the clock and
 * the state's own address. */
#include "core/rand.h"

#include "core/clock.h"

static __thread uint64_t srv__rng;

uint64_t srv_rand_u64(void) {
  uint64_t x = srv__rng;
  if (!x) {
    x = srv_clock_mono_ns() ^ (uint64_t)(uintptr_t)&srv__rng;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix step */
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    x ^= x >> 31;
    if (!x) x = 0x9e3779b97f4a7c15ull;
  }
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  srv__rng = x;
  return x * 0x2545f4914f6cdd1dull;
}

double srv_rand_uniform(void) { return (double)(srv_rand_u64() >> 11) * 0x1p-53; }

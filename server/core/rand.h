/* rand.h - a fast per-thread pseudo-random generator (xorshift64*) for
 * fault draws, session ids and jitter; not for secrets. */
#ifndef SRV_RAND_H
#define SRV_RAND_H

#include <stdint.h>

/* The next number from the calling thread's generator. */
uint64_t srv_rand_u64(void);
/* A number in [0, 1) from the same generator. */
double srv_rand_uniform(void);

#endif /* SRV_RAND_H */

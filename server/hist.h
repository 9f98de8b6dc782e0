/* hist.h - the sampler and the history it keeps in the shared region:
 * every --sample-ms, RSS, the heap's figures, the request rate and the
 * largest sites; and per call site, its live bytes over the last minutes,
 * from which growth rates and leak suspicion are judged. */
#ifndef SRV_HIST_H
#define SRV_HIST_H

#include <stdbool.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "shm.h"

/* A site's growth over the last minute (or what history there is). */
typedef struct srv_growth {
  double bytes_per_s;   /* live-byte growth rate over the window */
  double window_s;      /* seconds of history it was judged on */
  bool steady;          /* grew in at least 3 of 4 quarters, shrank in none */
} srv_growth_t;

/* Take the first sample and start the sampler thread; SRV_ENOMEM. */
int srv_hist_start(void);
/* Stop and join the sampler thread. */
void srv_hist_stop(void);
/* Take one sample now (the sampler does this every interval) if this
 * process is the serving worker; false if it is not (nothing written:
 * one history for all workers, written by the serving one). */
bool srv_hist_sample(void);

/* Samples written since start (the newest one's number). */
uint64_t srv_hist_count(void);
/* Copy sample number n (1-based); false if no longer (or not yet) kept. */
bool srv_hist_get(uint64_t n, srv_sample_t *out);
/* Requests per second over roughly the last second. */
double srv_hist_rate(void);

/* Sites known to the history. */
unsigned srv_hist_nsites(void);
/* Name of site index i. */
const char *srv_hist_site_name(unsigned i);
/* Index of the site table entry for this name, or -1. */
int srv_hist_site_find(const char *name);
/* When site i last went from no live blocks to some (unix ms; 0: none). */
uint64_t srv_hist_live_since(unsigned i);
/* Growth of site i over the last 60 s. */
void srv_hist_growth(unsigned i, srv_growth_t *out);

#endif /* SRV_HIST_H */

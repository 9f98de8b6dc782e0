/* hist.h - the sampler and the history it keeps in the shared region:
 * every --sample-ms, RSS, the heap's figures, the request rate and the
 * largest sites; and per call site, its live bytes over the last minutes,
 * from which growth rates and leak suspicion are judged. */
#ifndef SRV_HIST_H
#define SRV_HIST_H

#include <stdbool.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "http/reqstats.h"

#define SRV_HIST_CAP 57600     /* samples the ring can hold: 4 h at 250 ms */
#define SRV_HIST_DEFAULT 14400 /* 1 h at 250 ms */
#define SRV_TOP_SITES 8        /* largest sites kept with each sample */
#define SRV_SITES_MAX 256      /* call sites whose history is kept */
#define SRV_SITE_RING 512      /* per-site snapshots (>= 128 s) */

/* One history sample. */
typedef struct srv_sample {
  uint64_t t_ms;            /* wall clock, unix ms */
  uint64_t rss_bytes;       /* resident set of the worker */
  uint64_t vm_bytes;        /* its virtual size */
  uint64_t cpu_ms;          /* its user + system CPU time */
#define SRV__SAMPLE_HEAP(name, kind, metric, help) uint64_t heap_##name;
  LAB_STAT_FIELDS(SRV__SAMPLE_HEAP)
#undef SRV__SAMPLE_HEAP
  uint64_t errors[LAB_FAULT_COUNT]; /* caught faults by kind */
  uint64_t requests;        /* lifetime requests answered */
  uint64_t by_status[SRV_STATUS_COUNT]; /* lifetime answers by status
                                           (srv_reqstats_status_code) */
  double rate_per_s;        /* requests per second since the last sample */
  uint64_t top_bytes[SRV_TOP_SITES]; /* live bytes of the largest sites */
  uint16_t top_site[SRV_TOP_SITES];  /* their index in the site table + 1 */
} srv_sample_t;

/* A site's growth over the last minute (or what history there is). */
typedef struct srv_growth {
  double bytes_per_s;   /* live-byte growth rate over the window */
  double window_s;      /* seconds of history it was judged on */
  bool steady;          /* grew in at least 3 of 4 quarters, shrank in none */
} srv_growth_t;

/* Make the history's block in the region: hist_len samples (0: the
 * default; at most SRV_HIST_CAP) every sample_ms (0: 250). SRV_ENOMEM. */
int srv_hist_setup(uint32_t hist_len, uint32_t sample_ms);
/* Samples kept. */
uint32_t srv_hist_len(void);
/* The sampling interval, ms. */
uint32_t srv_hist_sample_ms(void);
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

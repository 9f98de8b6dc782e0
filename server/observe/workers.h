/* workers.h - who serves: the supervisor's pid, the serving worker and
 * its generation, a successor being started, and each worker's request
 * count, in the shared region; and who this process is. The process layer
 * (supervisor, worker) writes it; the observer reads it to say which
 * worker answers and to let only the serving one sample. */
#ifndef SRV_WORKERS_H
#define SRV_WORKERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SRV_WORKER_SLOTS 16 /* per-worker counters, by generation */

/* The block this module owns in the region. */
typedef struct srv_workers {
  uint64_t supervisor_pid;            /* the supervisor, or the one process */
  _Atomic uint64_t generation;        /* serving worker's generation, 1 for
                                         the first */
  _Atomic uint64_t worker_pid;        /* the serving worker (0: none) */
  _Atomic uint64_t successor_pid;     /* a worker forked and not yet
                                         serving (0: none) */
  _Atomic uint64_t requests[SRV_WORKER_SLOTS]; /* requests answered by the
                                         worker of generation g, at
                                         [g % SRV_WORKER_SLOTS] */
  _Atomic uint64_t limit[SRV_WORKER_SLOTS]; /* the count at which that
                                         worker tells the supervisor
                                         (0: never) */
  _Atomic uint64_t beat_ms[SRV_WORKER_SLOTS]; /* that worker's last
                                         heartbeat, monotonic ms */
  _Atomic uint64_t handover_asked;    /* 1: the next SIGHUP to the
                                         supervisor came from the API */
} srv_workers_t;

/* The block (set by srv_workers_setup; NULL before). */
extern srv_workers_t *srv_workers;

/* Who this process is; process-local, not in the region. */
typedef struct srv_workers_self {
  uint64_t generation;      /* its worker generation; 0 in the supervisor */
  uint64_t started_ms;      /* when the worker started, unix ms */
} srv_workers_self_t;

extern srv_workers_self_t srv_workers_self;

/* Make the block, this process being the supervisor; SRV_ENOMEM. */
int srv_workers_setup(void);
/* This process becomes worker `generation` (at its start). */
void srv_workers_become(uint64_t generation);
/* Whether this process is the serving worker. */
bool srv_workers_serving(void);
/* The requests counter of the worker of that generation. */
_Atomic uint64_t *srv_workers_requests(uint64_t generation);
/* The request count at which that worker tells the supervisor (0: never). */
_Atomic uint64_t *srv_workers_limit(uint64_t generation);
/* This worker is alive and serving: its heartbeat, as of stuck_ns ago
 * (how long its oldest running handler has run, 0 when none has), so
 * that a handler that never returns is late by its own time, as a
 * stopped worker is. */
void srv_workers_beat(uint64_t stuck_ns);
/* The heartbeat slot of the worker of that generation (monotonic ms). */
_Atomic uint64_t *srv_workers_beat_of(uint64_t generation);
/* Ask the supervisor for a graceful handover now, as SIGHUP does;
 * SRV_EACCES when there is none (--single-process) or it cannot be told. */
int srv_workers_ask_handover(void);
/* Requests this worker process answered. */
uint64_t srv_workers_my_requests(void);
/* Count one answered request for this worker; returns its new count. */
uint64_t srv_workers_count_request(void);

#endif /* SRV_WORKERS_H */

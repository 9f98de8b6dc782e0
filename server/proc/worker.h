/* worker.h - the worker: owns the heap, the sampler and the HTTP daemon,
 * and serves on a listening socket it is given until told to stop, then
 * drains. The supervisor (super.h) forks one per generation;
 * --single-process runs one alone. */
#ifndef SRV_WORKER_H
#define SRV_WORKER_H

#include <stdint.h>

#include "proc/cli.h"

#define SRV_WORKER_DRAIN_MS 5000 /* longest drain before the worker stops */
#define SRV_WORKER_IDLE_MS 1000  /* idle keep-alive connections wait this */

/* How a worker runs. */
typedef struct srv_worker_opts {
  uint64_t generation;      /* its generation (>= 1) */
  int ready_fd;             /* supervised: write end of a pipe that gets one
                               byte once the worker serves; -1 alone */
} srv_worker_opts_t;

/* Serve on listen_fd (bound to `port`) until SIGTERM (and SIGINT when
 * alone, ready_fd < 0), which the caller must have blocked in every
 * thread; then drain and return the exit status. Alone, the worker is
 * the serving worker from the start and writes the port file. */
int srv_worker_run(const srv_cfg_t *cfg, int listen_fd, unsigned port,
                   const srv_worker_opts_t *opts);

/* Write the port to path atomically (a temporary file renamed); SRV_EIO. */
int srv_worker_port_file(const char *path, unsigned port);
/* Print the "listening on" line to stderr. */
void srv_worker_announce(const srv_cfg_t *cfg, unsigned port);

#endif /* SRV_WORKER_H */

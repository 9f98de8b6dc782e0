/* worker.h - the worker: owns the heap, the sampler and the HTTP daemon,
 * and serves on a listening socket it is given until told to stop. The
 * supervisor (a later version) forks it; --single-process runs it alone. */
#ifndef SRV_WORKER_H
#define SRV_WORKER_H

#include "cli.h"

/* Serve on listen_fd (bound to `port`) until SIGINT or SIGTERM, which the
 * caller must have blocked in every thread. Returns the exit status. */
int srv_worker_run(const srv_cfg_t *cfg, int listen_fd, unsigned port);

#endif /* SRV_WORKER_H */

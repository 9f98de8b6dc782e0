/* super.h - the supervisor: forks the worker on the listening socket,
 * replaces it when a recycling guard says so, restarts it when it
 * crashes, and stops it on SIGINT/SIGTERM.
 *
 * It never runs the heap or the HTTP daemon, and it is single-threaded,
 * so forking is safe. It decides on recycling by polling: every
 * SRV_SUPER_TICK_MS it reads the serving worker's RSS from
 * /proc/<pid>/statm and its request count from the shared region.
 * Handover: the next worker starts on the same socket and writes a byte
 * to a pipe once it serves; only then is the old one sent SIGTERM, on
 * which it drains (worker.h). SIGHUP asks for the same handover at once,
 * as nginx's reload does. */
#ifndef SRV_SUPER_H
#define SRV_SUPER_H

#include "proc/cli.h"
#include "proc/worker.h"

#define SRV_SUPER_TICK_MS 20          /* polling interval */
#define SRV_SUPER_BACKOFF_MIN_MS 100  /* first restart delay after a crash */
#define SRV_SUPER_BACKOFF_MAX_MS 5000 /* the delay doubles up to this */
#define SRV_SUPER_STABLE_MS 250       /* served this long: not a crash loop */
#define SRV_SUPER_HEALTHY_MS 10000    /* serving this long resets it */
#define SRV_SUPER_KILL_MS 10000       /* a stopping worker is killed after */
#define SRV_SUPER_START_MS 60000      /* a starting worker is killed after */

/* Register the supervisor's counter (crashes); before the first fork.
 * SRV_ENOMEM. */
int srv_super_setup(void);
/* Run the supervisor on the listening sockets until SIGINT or
 * SIGTERM, which the caller must have blocked (with SIGHUP); returns the
 * exit status: 0, or 1 if the first worker could not start. */
int srv_super_run(const srv_cfg_t *cfg, const srv_worker_socks_t *socks);

#endif /* SRV_SUPER_H */

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
#define SRV_WORKER_BEAT_MS 250   /* heartbeats at least this often */

/* How a worker runs. */
typedef struct srv_worker_opts {
  uint64_t generation;      /* its generation (>= 1) */
  int ready_fd;             /* supervised: write end of a pipe that gets one
                               byte once the worker serves; -1 alone */
} srv_worker_opts_t;

/* The listening sockets every worker serves on. */
typedef struct srv_worker_socks {
  int fd;                   /* --port's socket */
  unsigned port;            /* the port it is bound to */
  int admin_fd;             /* --admin-port's socket, or -1 */
  unsigned admin_port;      /* its port */
} srv_worker_socks_t;

/* Serve on the sockets until SIGTERM (and SIGINT when alone, ready_fd <
 * 0), which the caller must have blocked in every thread; then drain and
 * return the exit status. Alone, the worker is the serving worker from
 * the start and writes the port files. */
int srv_worker_run(const srv_cfg_t *cfg, const srv_worker_socks_t *socks,
                   const srv_worker_opts_t *opts);

/* Write the port to path atomically (a temporary file renamed); SRV_EIO. */
int srv_worker_port_file(const char *path, unsigned port);
/* Write --port-file and --admin-port-file, as they are asked for;
 * SRV_EIO (message on stderr). */
int srv_worker_port_files(const srv_cfg_t *cfg, const srv_worker_socks_t *socks);
/* Print the "listening on" line to stderr. */
void srv_worker_announce(const srv_cfg_t *cfg, const srv_worker_socks_t *socks);

#endif /* SRV_WORKER_H */

/* main.c - leaklab: parse the options, make the shared region and let
 * every layer take its blocks and register its routes, flags, counters
 * and hooks, open the listening socket, then supervise workers (or, with
 * --single-process, be the one worker). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "app/demo.h"
#include "core/counters.h"
#include "core/err.h"
#include "core/shm.h"
#include "guards/guards.h"
#include "http/http.h"
#include "observe/observe.h"
#include "proc/cli.h"
#include "proc/super.h"
#include "proc/worker.h"

/* Everything a worker inherits, set up once before the first fork. The
 * order is what /api/flags lists and the router tries: the observer's
 * routes, then the demo app's routes and faults, then the guards. */
static int srv__setup(const srv_cfg_t *cfg) {
  int err = srv_shm_create(0);
  if (!err) err = srv_counters_setup();
  if (!err) err = srv_http_setup();
  if (!err) err = srv_observe_setup(cfg->history, cfg->sample_ms);
  if (!err) err = srv_demo_setup();
  if (!err) err = srv_guards_register(cfg->worker_memory_limit);
  if (!err) err = srv_guards_setup();
  if (!err) err = srv_super_setup();
  return err;
}

int main(int argc, char **argv) {
  srv_cfg_t cfg;
  int rc = srv_cli_parse(argc, argv, &cfg);
  if (rc == SRV_CLI_EXIT) return 0;
  if (rc < 0) return 2;

  /* Every thread and every worker inherits this mask; the supervisor and
   * the workers wait for the signals. */
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  int err = srv__setup(&cfg);
  if (err) {
    fprintf(stderr, "leaklab: cannot set up the shared region: %s\n",
            srv_strerror(err));
    srv_shm_destroy();
    return 1;
  }
  srv_worker_socks_t socks = {.fd = -1, .admin_fd = -1};
  if (srv_http_listen(cfg.bind, cfg.port, &socks.fd, &socks.port) ||
      (cfg.admin_port >= 0 &&
       srv_http_listen(cfg.bind, (unsigned)cfg.admin_port, &socks.admin_fd,
                       &socks.admin_port))) {
    if (socks.fd >= 0) close(socks.fd);
    srv_shm_destroy();
    return 1;
  }
  if (cfg.single_process) {
    srv_worker_opts_t o = {.generation = 1, .ready_fd = -1};
    rc = srv_worker_run(&cfg, &socks, &o);
  } else {
    rc = srv_super_run(&cfg, &socks);
    close(socks.fd);
    if (socks.admin_fd >= 0) close(socks.admin_fd);
  }
  srv_shm_destroy();
  return rc;
}

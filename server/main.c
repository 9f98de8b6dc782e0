/* main.c - leaklab: parse the options, make the shared region, open the
 * listening socket, then supervise workers (or, with --single-process,
 * be the one worker). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "http.h"
#include "shm.h"
#include "super.h"
#include "worker.h"

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

  if (srv_shm_create(cfg.history, cfg.sample_ms)) {
    fprintf(stderr, "leaklab: cannot map the shared region\n");
    return 1;
  }
  int fd;
  unsigned port;
  if (srv_http_listen(cfg.bind, cfg.port, &fd, &port)) {
    srv_shm_destroy();
    return 1;
  }
  if (cfg.single_process) {
    srv_worker_opts_t o = {.generation = 1, .ready_fd = -1};
    rc = srv_worker_run(&cfg, fd, port, &o);
  } else {
    rc = srv_super_run(&cfg, fd, port);
    close(fd);
  }
  srv_shm_destroy();
  return rc;
}

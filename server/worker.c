/* worker.c - one worker's life: heap, sampler, daemon, signals. */
#include "worker.h"

#include <cjson/cJSON.h>
#include <lab/cjson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "hist.h"
#include "http.h"
#include "proc.h"
#include "session.h"
#include "shm.h"

/* Write the port to path atomically (a temporary file renamed). */
static int srv__write_port_file(const char *path, unsigned port) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
    return -1;
  FILE *f = fopen(tmp, "w");
  if (!f) return -1;
  fprintf(f, "%u\n", port);
  if (fclose(f) || rename(tmp, path)) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

int srv_worker_run(const srv_cfg_t *cfg, int listen_fd, unsigned port) {
  lab_config_t lc = {.backend = cfg->heap};
  int err = lab_init(&lc);
  if (err) {
    fprintf(stderr, "leaklab: heap would not start: %s\n", lab_strerror(err));
    close(listen_fd);
    return 1;
  }
  lab_cjson_install();
  srv_events_install();
  atomic_fetch_add(&srv_shm->generation, 1);
  atomic_store(&srv_shm->worker_pid, (uint64_t)getpid());
  atomic_store(&srv_shm->worker_started_ms, srv_proc_now_ms());

  if (srv_hist_start()) {
    fprintf(stderr, "leaklab: cannot start the sampler thread\n");
    close(listen_fd);
    return 1;
  }
  srv_http_config_t hc = {
      .threads = cfg->threads,
      .max_conns = cfg->max_conns,
      .timeout_s = cfg->timeout_s,
      .max_body = cfg->max_body,
      .admin_token = cfg->admin_token[0] ? cfg->admin_token : NULL,
  };
  if (srv_http_start(&hc, listen_fd)) {
    srv_hist_stop();
    close(listen_fd);
    return 1;
  }
  srv_events_log(SRV_EVENT_start,
                 "worker %d serving on %s:%u with the %s heap, %u thread%s",
                 (int)getpid(), cfg->bind, port, lab_backend_name(),
                 cfg->threads, cfg->threads == 1 ? "" : "s");
  bool v6 = strchr(cfg->bind, ':') != NULL;
  fprintf(stderr, "leaklab: listening on http://%s%s%s:%u (heap %s, %u thread%s)\n",
          v6 ? "[" : "", cfg->bind, v6 ? "]" : "", port, lab_backend_name(),
          cfg->threads, cfg->threads == 1 ? "" : "s");
  int rc = 0;
  if (cfg->port_file[0] && srv__write_port_file(cfg->port_file, port)) {
    fprintf(stderr, "leaklab: cannot write the port file %s: %m\n",
            cfg->port_file);
    rc = 1;
  }

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (!rc && sigwait(&set, &sig)) {
  }
  if (!rc) fprintf(stderr, "leaklab: %s, stopping\n", strsignal(sig));

  srv_http_stop();
  srv_hist_stop();
  srv_session_clear();
  srv_events_log(SRV_EVENT_stop, "worker %d stopped", (int)getpid());
  return rc;
}

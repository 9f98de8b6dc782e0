/* worker.c - one worker's life: heap, sampler, daemon, signals, drain. */
#include "proc/worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <lab/cjson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/session.h"
#include "core/clock.h"
#include "core/err.h"
#include "guards/memlimit.h"
#include "http/http.h"
#include "observe/events.h"
#include "observe/hist.h"
#include "observe/workers.h"

int srv_worker_port_file(const char *path, unsigned port) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
    return SRV_EIO;
  FILE *f = fopen(tmp, "w");
  if (!f) return SRV_EIO;
  fprintf(f, "%u\n", port);
  if (fclose(f) || rename(tmp, path)) {
    unlink(tmp);
    return SRV_EIO;
  }
  return SRV_OK;
}

int srv_worker_port_files(const srv_cfg_t *cfg, const srv_worker_socks_t *socks) {
  if (cfg->port_file[0] && srv_worker_port_file(cfg->port_file, socks->port)) {
    fprintf(stderr, "leaklab: cannot write the port file %s: %m\n",
            cfg->port_file);
    return SRV_EIO;
  }
  if (socks->admin_fd >= 0 && cfg->admin_port_file[0] &&
      srv_worker_port_file(cfg->admin_port_file, socks->admin_port)) {
    fprintf(stderr, "leaklab: cannot write the admin port file %s: %m\n",
            cfg->admin_port_file);
    return SRV_EIO;
  }
  return SRV_OK;
}

void srv_worker_announce(const srv_cfg_t *cfg, const srv_worker_socks_t *socks) {
  bool v6 = strchr(cfg->bind, ':') != NULL;
  if (socks->admin_fd >= 0)
    fprintf(stderr, "leaklab: the observer also on http://%s%s%s:%u\n",
            v6 ? "[" : "", cfg->bind, v6 ? "]" : "", socks->admin_port);
  fprintf(stderr, "leaklab: listening on http://%s%s%s:%u (heap %s, %u thread%s%s)\n",
          v6 ? "[" : "", cfg->bind, v6 ? "]" : "", socks->port,
          cfg->heap == LAB_BACKEND_LIBC ? "libc" : "lab", cfg->threads,
          cfg->threads == 1 ? "" : "s",
          cfg->single_process ? ", single process" : "");
}

/* The heartbeat thread: every tick this worker says it is alive, as of
 * the start of its oldest running handler, so a request stuck in its
 * handler makes it late after --worker-timeout, as a stopped process
 * that beats no more is. */
static pthread_t srv__beater;
static pthread_mutex_t srv__beat_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t srv__beat_wake = PTHREAD_COND_INITIALIZER;
static bool srv__beat_stop, srv__beating;
static uint64_t srv__beat_timeout_ns;

static void *srv__beat_main(void *arg) {
  (void)arg;
  uint64_t tick_ms = srv__beat_timeout_ns / 4000000u;
  if (tick_ms > SRV_WORKER_BEAT_MS) tick_ms = SRV_WORKER_BEAT_MS;
  if (tick_ms < 10) tick_ms = 10;
  pthread_mutex_lock(&srv__beat_lock);
  while (!srv__beat_stop) {
    srv_workers_beat(srv_http_handler_ns(srv_clock_mono_ns()));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + tick_ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(&srv__beat_wake, &srv__beat_lock, &ts);
  }
  pthread_mutex_unlock(&srv__beat_lock);
  return NULL;
}

static int srv__beat_start(unsigned timeout_s) {
  srv_workers_beat(0);
  if (!timeout_s) return SRV_OK;
  srv__beat_timeout_ns = (uint64_t)timeout_s * 1000000000u;
  srv__beat_stop = false;
  if (pthread_create(&srv__beater, NULL, srv__beat_main, NULL)) return SRV_EIO;
  srv__beating = true;
  return SRV_OK;
}

static void srv__beat_stop_join(void) {
  if (!srv__beating) return;
  pthread_mutex_lock(&srv__beat_lock);
  srv__beat_stop = true;
  pthread_cond_signal(&srv__beat_wake);
  pthread_mutex_unlock(&srv__beat_lock);
  pthread_join(srv__beater, NULL);
  srv__beating = false;
}

/* Close the listening sockets (a worker that cannot serve). */
static void srv__close_socks(const srv_worker_socks_t *socks) {
  close(socks->fd);
  if (socks->admin_fd >= 0) close(socks->admin_fd);
}

int srv_worker_run(const srv_cfg_t *cfg, const srv_worker_socks_t *socks,
                   const srv_worker_opts_t *opts) {
  unsigned port = socks->port;
  bool alone = opts->ready_fd < 0;
  srv_workers_become(opts->generation);

  /* Whole blocks: the fault endpoints show the patterns in every byte
   * (report.uninit dumps rows well past the first 48). */
  lab_config_t lc = {.backend = cfg->heap, .fill_limit = LAB_FILL_WHOLE,
                     .stack_depth = cfg->stacks};
  int err = lab_init(&lc);
  if (err) {
    fprintf(stderr, "leaklab: heap would not start: %s\n", lab_strerror(err));
    srv__close_socks(socks);
    return 1;
  }
  lab_cjson_install();
  srv_events_install();
  srv_memlimit_install();
  if (alone) {
    /* No supervisor: this process is the serving worker from the start. */
    atomic_store(&srv_workers->generation, opts->generation);
    atomic_store(&srv_workers->worker_pid, (uint64_t)getpid());
  }

  if (srv_hist_start()) {
    fprintf(stderr, "leaklab: cannot start the sampler thread\n");
    srv__close_socks(socks);
    return 1;
  }
  srv_http_config_t hc = {
      .threads = cfg->threads,
      .max_conns = cfg->max_conns,
      .timeout_s = cfg->timeout_s,
      .request_timeout_s = cfg->request_timeout_s,
      .header_timeout_s = cfg->header_timeout_s,
      .max_conns_per_client = cfg->max_conns_per_client,
      .max_body = cfg->max_body,
      .admin_token = cfg->admin_token[0] ? cfg->admin_token : NULL,
  };
  if (srv_http_start(&hc, socks->fd, socks->admin_fd)) {
    srv_hist_stop();
    srv__close_socks(socks);
    return 1;
  }
  if (srv__beat_start(alone ? 0 : cfg->worker_timeout_s)) {
    fprintf(stderr, "leaklab: cannot start the heartbeat thread\n");
    srv_http_drain(0, 0, NULL);
    srv_hist_stop();
    return 1;
  }
  srv_events_log(SRV_EVENT_start,
                 "worker %d (generation %llu) serving on %s:%u with the %s "
                 "heap, %u thread%s",
                 (int)getpid(), (unsigned long long)opts->generation,
                 cfg->bind, port, lab_backend_name(), cfg->threads,
                 cfg->threads == 1 ? "" : "s");
  int rc = 0;
  if (alone) {
    srv_worker_announce(cfg, socks);
    fprintf(stderr, "leaklab: single process: no supervisor, so "
                    "guard.recycle_rss_bytes and guard.recycle_requests "
                    "have no effect and a crash is not restarted\n");
    if (srv_worker_port_files(cfg, socks)) rc = 1;
  } else {
    /* Tell the supervisor this worker serves: it then stops the old one. */
    char one = 1;
    while (write(opts->ready_fd, &one, 1) < 0 && errno == EINTR) {
    }
    close(opts->ready_fd);
  }

  /* Supervised, SIGINT is the supervisor's: a Ctrl-C reaches the whole
   * process group, and the supervisor answers it with SIGTERM here. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  if (alone) sigaddset(&set, SIGINT);
  int sig = 0;
  while (!rc && sigwait(&set, &sig)) {
  }
  if (!rc && alone) fprintf(stderr, "leaklab: %s, stopping\n", strsignal(sig));

  srv_http_drain_t d;
  srv_http_drain(SRV_WORKER_DRAIN_MS, SRV_WORKER_IDLE_MS, &d);
  srv__beat_stop_join();
  srv_hist_stop();
  srv_session_clear();
  srv_events_log(SRV_EVENT_stop,
                 "worker %d (generation %llu) stopped after a %llu ms drain "
                 "(%llu requests answered while draining%s)",
                 (int)getpid(), (unsigned long long)opts->generation,
                 (unsigned long long)d.ms, (unsigned long long)d.requests,
                 d.timed_out ? ", drain time ran out" : "");
  return rc;
}

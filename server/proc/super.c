/* super.c - the supervisor: one loop over a signalfd, the workers' ready
 * pipes and a short tick. */
#define _GNU_SOURCE
#include "proc/super.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/err.h"
#include "core/procfs.h"
#include "core/rand.h"
#include "guards/memlimit.h"
#include "guards/recycle.h"
#include "observe/events.h"
#include "observe/workers.h"
#include "proc/worker.h"

/* Workers alive at once: the serving one, its successor, and those still
 * draining. Fewer than SRV_WORKER_SLOTS, so no two share a counter. */
#define SRV__MAX_WORKERS 10

_Static_assert(SRV__MAX_WORKERS < SRV_WORKER_SLOTS,
               "live workers must not share a request counter");

typedef enum srv__state {
  SRV__FREE,     /* no worker in this slot */
  SRV__STARTING, /* forked, not serving yet */
  SRV__SERVING,  /* the one worker new connections go to */
  SRV__STOPPING  /* sent SIGTERM: draining */
} srv__state_t;

typedef struct srv__worker {
  srv__state_t state;
  pid_t pid;
  uint64_t generation;
  int ready_fd;             /* read end of its ready pipe, or -1 */
  uint64_t t_fork;          /* monotonic ms: forked */
  uint64_t t_ready;         /* ... started serving */
  uint64_t t_stop;          /* ... was told to stop */
  srv_recycle_t rc;         /* what the recycling guard keeps of it */
  bool killed;              /* the supervisor sent it SIGKILL */
  bool hung;                /* it missed its heartbeat: killed, not
                               drained, once its successor serves */
  char why[160];            /* why it was started, if to replace one */
} srv__worker_t;

typedef struct srv__sup {
  const srv_cfg_t *cfg;
  const srv_worker_socks_t *socks;
  int sfd;                  /* signalfd: SIGINT, SIGTERM, SIGHUP, SIGUSR1,
                               SIGCHLD */
  srv__worker_t w[SRV__MAX_WORKERS];
  uint64_t last_gen;        /* generation of the newest worker */
  uint64_t backoff_ms;      /* delay before the next restart */
  uint64_t start_at;        /* monotonic ms to start a worker at, or 0 */
  uint64_t recycle_at;      /* no recycle before this (monotonic ms) */
  double handover_ms;       /* fork to serving, smoothed */
  bool ever_ready;          /* a worker has served */
  bool stopping;            /* SIGINT/SIGTERM received */
  bool hup;                 /* SIGHUP received: replace the worker */
  int exit_code;
} srv__sup_t;

static srv_counter_t *srv__crashes, *srv__hangs;

int srv_super_setup(void) {
  srv__crashes = srv_counters_add("crashes", "workers that died and were restarted");
  srv__hangs = srv_counters_add("hangs", "workers replaced for missing their "
                                         "heartbeat (--worker-timeout)");
  return srv__crashes && srv__hangs ? SRV_OK : SRV_ENOMEM;
}

static uint64_t srv__now(void) { return srv_clock_mono_ns() / 1000000u; }

static srv__worker_t *srv__find(srv__sup_t *s, srv__state_t state) {
  for (int i = 0; i < SRV__MAX_WORKERS; i++)
    if (s->w[i].state == state) return &s->w[i];
  return NULL;
}

static int srv__alive(const srv__sup_t *s) {
  int n = 0;
  for (int i = 0; i < SRV__MAX_WORKERS; i++) n += s->w[i].state != SRV__FREE;
  return n;
}

static void srv__status_text(int st, char *buf, size_t cap) {
  if (WIFSIGNALED(st)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(st));
    snprintf(buf, cap, "killed by SIG%s%s", abbrev ? abbrev : "?",
             WCOREDUMP(st) ? " (core dumped)" : "");
  } else if (WEXITSTATUS(st) == SRV_MEMLIMIT_EXIT) {
    snprintf(buf, cap, "ran out of memory (exit status %d)", WEXITSTATUS(st));
  } else {
    snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
  }
}

/* The child side of a fork: become a worker and never return. */
static void srv__worker_main(srv__sup_t *s, int ready[2], uint64_t gen) {
  close(ready[0]);
  close(s->sfd);
  for (int i = 0; i < SRV__MAX_WORKERS; i++)
    if (s->w[i].state != SRV__FREE && s->w[i].ready_fd >= 0)
      close(s->w[i].ready_fd);
  /* Die with the supervisor: a worker left behind would keep the port. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != (pid_t)srv_workers->supervisor_pid) _exit(1);
  srv_worker_opts_t o = {.generation = gen, .ready_fd = ready[1]};
  exit(srv_worker_run(s->cfg, s->socks, &o));
}

/* Fork the next worker; why says what it replaces, or is NULL. */
static srv__worker_t *srv__spawn(srv__sup_t *s, const char *why) {
  srv__worker_t *w = srv__find(s, SRV__FREE);
  if (!w) return NULL;
  int ready[2];
  if (pipe2(ready, O_CLOEXEC)) {
    fprintf(stderr, "leaklab: cannot make a pipe for a worker: %m\n");
    return NULL;
  }
  uint64_t gen = s->last_gen + 1;
  atomic_store(srv_workers_requests(gen), 0);
  atomic_store(srv_workers_limit(gen), 0);
  atomic_store(srv_workers_beat_of(gen), srv__now());
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "leaklab: cannot fork a worker: %m\n");
    close(ready[0]);
    close(ready[1]);
    return NULL;
  }
  if (pid == 0) srv__worker_main(s, ready, gen);
  close(ready[1]);
  atomic_store(&srv_workers->successor_pid, (uint64_t)pid);
  s->last_gen = gen;
  memset(w, 0, sizeof *w);
  w->state = SRV__STARTING;
  w->pid = pid;
  w->generation = gen;
  w->ready_fd = ready[0];
  w->t_fork = srv__now();
  /* Jitter, so a fleet does not recycle in lockstep (recycle.h). */
  double u1 = srv_rand_uniform(), u2 = srv_rand_uniform();
  srv_recycle_init(&w->rc, u1, u2);
  snprintf(w->why, sizeof w->why, "%s", why ? why : "");
  return w;
}

static void srv__stop_worker(srv__worker_t *w, uint64_t now) {
  /* A hung worker cannot drain: what it holds is lost either way. */
  kill(w->pid, w->hung ? SIGKILL : SIGTERM);
  if (w->hung) w->killed = true;
  w->state = SRV__STOPPING;
  w->t_stop = now;
}

static void srv__shutdown(srv__sup_t *s, int sig) {
  if (s->stopping) return;
  s->stopping = true;
  if (sig) fprintf(stderr, "leaklab: %s, stopping\n", strsignal(sig));
  uint64_t now = srv__now();
  for (int i = 0; i < SRV__MAX_WORKERS; i++)
    if (s->w[i].state == SRV__STARTING || s->w[i].state == SRV__SERVING)
      srv__stop_worker(&s->w[i], now);
}

/* A worker wrote its ready byte: it serves. Make it the serving worker,
 * then tell its predecessor to drain. */
static void srv__promote(srv__sup_t *s, srv__worker_t *w) {
  uint64_t now = srv__now();
  srv__worker_t *old = srv__find(s, SRV__SERVING);
  w->state = SRV__SERVING;
  w->t_ready = now;
  atomic_store(&srv_workers->successor_pid, 0);
  s->handover_ms = 0.7 * s->handover_ms + 0.3 * (double)(now - w->t_fork);
  atomic_store(&srv_workers->generation, w->generation);
  atomic_store(&srv_workers->worker_pid, (uint64_t)w->pid);
  atomic_store(srv_workers_limit(w->generation),
               srv_recycle_request_limit(&w->rc, srv_recycle_requests_flag()));
  if (old && old->hung) {
    srv__stop_worker(old, now);
    srv_events_log(SRV_EVENT_hung,
                   "hung worker %d (generation %llu) replaced by worker %d "
                   "(generation %llu) in %llu ms and killed",
                   (int)old->pid, (unsigned long long)old->generation,
                   (int)w->pid, (unsigned long long)w->generation,
                   (unsigned long long)(now - w->t_fork));
    fprintf(stderr, "leaklab: hung worker %d replaced by worker %d\n",
            (int)old->pid, (int)w->pid);
  } else if (old) {
    srv__stop_worker(old, now);
    srv_recycle_count();
    srv_events_log(SRV_EVENT_recycle,
                   "worker %d (generation %llu) replaced by worker %d "
                   "(generation %llu) in %llu ms: %s",
                   (int)old->pid, (unsigned long long)old->generation,
                   (int)w->pid, (unsigned long long)w->generation,
                   (unsigned long long)(now - w->t_fork), w->why);
    fprintf(stderr, "leaklab: worker %d (generation %llu) replaced by "
                    "worker %d: %s\n",
            (int)old->pid, (unsigned long long)old->generation, (int)w->pid,
            w->why);
  }
  if (!s->ever_ready) {
    s->ever_ready = true;
    srv_worker_announce(s->cfg, s->socks);
    if (srv_worker_port_files(s->cfg, s->socks)) {
      s->exit_code = 1;
      srv__shutdown(s, 0);
    }
  }
}

/* The next restart delay. A worker that served SRV_SUPER_STABLE_MS before
 * it died (killed, or a crash under load) restarts after the minimum; one
 * that dies sooner, or before it serves, is a crash loop: 100 ms doubling
 * to 5 s. The delay falls back to the minimum once a worker has served
 * SRV_SUPER_HEALTHY_MS (srv__tick), so it never sticks. */
static uint64_t srv__backoff(srv__sup_t *s, const srv__worker_t *w,
                             uint64_t now) {
  if (w->state == SRV__SERVING && now - w->t_ready >= SRV_SUPER_STABLE_MS)
    return SRV_SUPER_BACKOFF_MIN_MS;
  uint64_t d = s->backoff_ms;
  s->backoff_ms = d * 2 > SRV_SUPER_BACKOFF_MAX_MS ? SRV_SUPER_BACKOFF_MAX_MS
                                                   : d * 2;
  return d;
}

/* A worker ended with wait status st. */
static void srv__ended(srv__sup_t *s, srv__worker_t *w, int st) {
  uint64_t now = srv__now();
  char how[64];
  srv__status_text(st, how, sizeof how);
  bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
  if (w->ready_fd >= 0) close(w->ready_fd);
  w->ready_fd = -1;
  switch (w->state) {
  case SRV__SERVING: {
    uint64_t pid = (uint64_t)w->pid;
    atomic_compare_exchange_strong(&srv_workers->worker_pid, &pid, 0);
    srv_counter_add(srv__crashes, 1);
    uint64_t delay = srv__backoff(s, w, now);
    bool successor = srv__find(s, SRV__STARTING) != NULL;
    char next[64];
    if (successor) snprintf(next, sizeof next, "its successor is starting");
    else snprintf(next, sizeof next, "restarting in %llu ms",
                  (unsigned long long)delay);
    srv_events_log(SRV_EVENT_crash,
                   "worker %d (generation %llu) %s after serving %.1f s; %s",
                   (int)w->pid, (unsigned long long)w->generation, how,
                   (double)(now - w->t_ready) / 1000.0, next);
    fprintf(stderr, "leaklab: worker %d (generation %llu) %s; %s\n",
            (int)w->pid, (unsigned long long)w->generation, how, next);
    if (!successor) s->start_at = now + delay;
    break;
  }
  case SRV__STARTING: {
    atomic_store(&srv_workers->successor_pid, 0);
    if (!s->ever_ready) {
      fprintf(stderr, "leaklab: the worker %s before it served\n", how);
      s->exit_code = 1;
      srv__shutdown(s, 0);
      break;
    }
    srv_counter_add(srv__crashes, 1);
    uint64_t delay = srv__backoff(s, w, now);
    srv_events_log(SRV_EVENT_crash,
                   "worker %d (generation %llu) %s before it served; "
                   "retrying in %llu ms",
                   (int)w->pid, (unsigned long long)w->generation, how,
                   (unsigned long long)delay);
    fprintf(stderr, "leaklab: worker %d %s before it served\n", (int)w->pid,
            how);
    if (srv__find(s, SRV__SERVING)) s->recycle_at = now + delay;
    else s->start_at = now + delay;
    break;
  }
  case SRV__STOPPING:
    if (clean) break;
    if (w->hung) {
      /* Its replacement was logged as the hung event. */
    } else if (w->killed) {
      srv_events_log(SRV_EVENT_stop,
                     "worker %d (generation %llu) did not stop within %d s "
                     "and was killed",
                     (int)w->pid, (unsigned long long)w->generation,
                     SRV_SUPER_KILL_MS / 1000);
    } else {
      srv_counter_add(srv__crashes, 1);
      srv_events_log(SRV_EVENT_crash,
                     "worker %d (generation %llu) %s while it drained",
                     (int)w->pid, (unsigned long long)w->generation, how);
    }
    if (!w->hung) /* a hung one's end was said at the handover */
      fprintf(stderr, "leaklab: worker %d %s while it stopped\n", (int)w->pid,
            how);
    break;
  case SRV__FREE:
    break;
  }
  memset(w, 0, sizeof *w);
  w->state = SRV__FREE;
  w->ready_fd = -1;
}

static void srv__reap(srv__sup_t *s) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    for (int i = 0; i < SRV__MAX_WORKERS; i++)
      if (s->w[i].state != SRV__FREE && s->w[i].pid == pid) {
        srv__ended(s, &s->w[i], st);
        break;
      }
  }
}

static void srv__signals(srv__sup_t *s) {
  struct signalfd_siginfo si;
  while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM)
      srv__shutdown(s, (int)si.ssi_signo);
    else if (si.ssi_signo == SIGHUP)
      s->hup = true;
  }
}

static void srv__ready(srv__sup_t *s, srv__worker_t *w) {
  char b;
  ssize_t n = read(w->ready_fd, &b, 1);
  if (n < 0 && errno == EINTR) return;
  close(w->ready_fd);
  w->ready_fd = -1;
  /* No byte: it died first (reaped below). */
  if (n == 1 && w->state == SRV__STARTING && !s->stopping) srv__promote(s, w);
}

/* Whether the serving worker is past a recycling guard; why says how.
 * The guard decides (recycle.h); a handover takes the next tick plus the
 * usual fork-to-serving time. */
static bool srv__due(srv__sup_t *s, srv__worker_t *w, char *why, size_t cap) {
  uint64_t reqs = srv_recycle_requests_flag();
  uint64_t rss_max = srv_recycle_rss_flag();
  /* The worker signals when it reaches the limit; a limit lowered below
   * its count is seen here. */
  atomic_store(srv_workers_limit(w->generation),
               srv_recycle_request_limit(&w->rc, reqs));
  uint64_t n = atomic_load(srv_workers_requests(w->generation)), rss = 0;
  if (rss_max && srv_procfs_mem_of(w->pid, &rss, NULL)) rss_max = 0;
  return srv_recycle_due(&w->rc, reqs, rss_max, n, rss, srv__now(),
                         SRV_SUPER_TICK_MS + s->handover_ms, why, cap);
}

/* Whether the serving worker has gone --worker-timeout without a
 * heartbeat. */
static bool srv__missed_beat(const srv__sup_t *s, const srv__worker_t *w,
                             uint64_t now) {
  if (!s->cfg->worker_timeout_s) return false;
  uint64_t beat = atomic_load(srv_workers_beat_of(w->generation));
  return now > beat && now - beat > (uint64_t)s->cfg->worker_timeout_s * 1000u;
}

static void srv__tick(srv__sup_t *s) {
  uint64_t now = srv__now();
  for (int i = 0; i < SRV__MAX_WORKERS; i++) {
    srv__worker_t *w = &s->w[i];
    bool late = (w->state == SRV__STARTING && now - w->t_fork > SRV_SUPER_START_MS) ||
                (w->state == SRV__STOPPING && now - w->t_stop > SRV_SUPER_KILL_MS);
    if (late && !w->killed) {
      fprintf(stderr, "leaklab: worker %d is late %s; killing it\n",
              (int)w->pid, w->state == SRV__STARTING ? "to start" : "to stop");
      kill(w->pid, SIGKILL);
      w->killed = true;
    }
  }
  if (s->stopping) return;
  srv__worker_t *serving = srv__find(s, SRV__SERVING);
  srv__worker_t *starting = srv__find(s, SRV__STARTING);
  if (serving && now - serving->t_ready >= SRV_SUPER_HEALTHY_MS)
    s->backoff_ms = SRV_SUPER_BACKOFF_MIN_MS;
  if (serving && !serving->hung && srv__missed_beat(s, serving, now)) {
    /* Replaced as in a recycle, successor first (below, at once); at the
     * handover it is killed, since it cannot drain. */
    uint64_t beat = atomic_load(srv_workers_beat_of(serving->generation));
    serving->hung = true;
    srv_counter_add(srv__hangs, 1);
    char why[160];
    snprintf(why, sizeof why, "worker %d missed its heartbeat for %.1f s "
                              "(--worker-timeout %u)",
             (int)serving->pid, (double)(now - beat) / 1000.0,
             s->cfg->worker_timeout_s);
    srv_events_log(SRV_EVENT_hung, "%s; %s", why,
                   starting ? "its successor is starting" : "starting a successor");
    fprintf(stderr, "leaklab: %s\n", why);
    s->recycle_at = now;
  }
  if (serving && serving->hung && !starting && now >= s->recycle_at &&
      srv__alive(s) < SRV__MAX_WORKERS) {
    /* Its successor: the first, or, after one that failed (it died before
     * it served, or could not be forked), the next after the crash-loop
     * backoff, until one serves. */
    char why[160];
    snprintf(why, sizeof why, "worker %d is hung", (int)serving->pid);
    if (!srv__spawn(s, why)) s->recycle_at = now + s->backoff_ms;
    return;
  }
  if (s->start_at && now >= s->start_at && !serving && !starting) {
    s->start_at = 0;
    if (!srv__spawn(s, NULL)) s->start_at = now + s->backoff_ms;
    return;
  }
  if (!serving || starting || now < s->recycle_at ||
      srv__alive(s) >= SRV__MAX_WORKERS)
    return;
  char why[160];
  if (s->hup)
    snprintf(why, sizeof why, "%s",
             atomic_exchange(&srv_workers->handover_asked, 0)
                 ? "asked for by POST /api/recycle"
                 : "SIGHUP");
  else if (!srv__due(s, serving, why, sizeof why)) return;
  s->hup = false;
  if (!srv__spawn(s, why)) s->recycle_at = now + s->backoff_ms;
}

int srv_super_run(const srv_cfg_t *cfg, const srv_worker_socks_t *socks) {
  srv__sup_t s;
  memset(&s, 0, sizeof s);
  s.cfg = cfg;
  s.socks = socks;
  s.backoff_ms = SRV_SUPER_BACKOFF_MIN_MS;
  s.handover_ms = SRV_SUPER_TICK_MS;
  for (int i = 0; i < SRV__MAX_WORKERS; i++) s.w[i].ready_fd = -1;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1); /* a worker reached guard.recycle_requests */
  sigprocmask(SIG_BLOCK, &set, NULL);
  s.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (s.sfd < 0) {
    fprintf(stderr, "leaklab: cannot make a signalfd: %m\n");
    return 1;
  }
  if (!srv__spawn(&s, NULL)) {
    close(s.sfd);
    return 1;
  }
  while (!s.stopping || srv__alive(&s)) {
    struct pollfd pfd[1 + SRV__MAX_WORKERS];
    srv__worker_t *who[1 + SRV__MAX_WORKERS];
    nfds_t n = 0;
    pfd[n] = (struct pollfd){s.sfd, POLLIN, 0};
    who[n++] = NULL;
    for (int i = 0; i < SRV__MAX_WORKERS; i++)
      if (s.w[i].state != SRV__FREE && s.w[i].ready_fd >= 0) {
        pfd[n] = (struct pollfd){s.w[i].ready_fd, POLLIN, 0};
        who[n++] = &s.w[i];
      }
    if (poll(pfd, n, SRV_SUPER_TICK_MS) < 0 && errno != EINTR) {
      fprintf(stderr, "leaklab: poll: %m\n");
      s.exit_code = 1;
      srv__shutdown(&s, 0);
    }
    if (pfd[0].revents) srv__signals(&s);
    for (nfds_t k = 1; k < n; k++)
      if (pfd[k].revents && who[k]->ready_fd == pfd[k].fd) srv__ready(&s, who[k]);
    srv__reap(&s);
    srv__tick(&s);
  }
  close(s.sfd);
  return s.exit_code;
}

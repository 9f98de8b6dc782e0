/* workers.c - the serving worker and per-worker counters. */
#include "observe/workers.h"

#include <signal.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/shm.h"

srv_workers_t *srv_workers;
srv_workers_self_t srv_workers_self;

int srv_workers_setup(void) {
  srv_workers = srv_shm_alloc(sizeof *srv_workers);
  if (!srv_workers) return SRV_ENOMEM;
  srv_workers->supervisor_pid = (uint64_t)getpid();
  return SRV_OK;
}

void srv_workers_become(uint64_t generation) {
  srv_workers_self.generation = generation;
  srv_workers_self.started_ms = srv_clock_now_ms();
}

bool srv_workers_serving(void) {
  return srv_workers && atomic_load(&srv_workers->worker_pid) == (uint64_t)getpid();
}

_Atomic uint64_t *srv_workers_requests(uint64_t generation) {
  return &srv_workers->requests[generation % SRV_WORKER_SLOTS];
}

_Atomic uint64_t *srv_workers_limit(uint64_t generation) {
  return &srv_workers->limit[generation % SRV_WORKER_SLOTS];
}

void srv_workers_beat(uint64_t stuck_ns) {
  uint64_t now = srv_clock_mono_ns();
  atomic_store_explicit(srv_workers_beat_of(srv_workers_self.generation),
                        (now > stuck_ns ? now - stuck_ns : 0) / 1000000u,
                        memory_order_relaxed);
}

_Atomic uint64_t *srv_workers_beat_of(uint64_t generation) {
  return &srv_workers->beat_ms[generation % SRV_WORKER_SLOTS];
}

int srv_workers_ask_handover(void) {
  pid_t sup = (pid_t)srv_workers->supervisor_pid;
  if (sup == getpid()) return SRV_EACCES; /* alone: nobody to replace us */
  atomic_store(&srv_workers->handover_asked, 1);
  return kill(sup, SIGHUP) ? SRV_EACCES : SRV_OK;
}

uint64_t srv_workers_my_requests(void) {
  return atomic_load_explicit(srv_workers_requests(srv_workers_self.generation),
                              memory_order_relaxed);
}

uint64_t srv_workers_count_request(void) {
  return atomic_fetch_add_explicit(
             srv_workers_requests(srv_workers_self.generation), 1,
             memory_order_relaxed) + 1;
}

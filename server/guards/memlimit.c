/* memlimit.c - the worker's memory limit, and what running out does. */
#include "guards/memlimit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include <lab/alloc.h>

#include "core/clock.h"
#include "core/counters.h"
#include "core/err.h"
#include "http/http.h"
#include "observe/events.h"
#include "observe/flags.h"
#include "observe/sites.h"

static srv_flag_def_t srv__flag = {
    "worker.memory_limit_bytes", SRV_FLAG_BYTES, 0,
    "the worker's memory limit (--worker-memory-limit): past it the heap "
    "refuses to allocate, as a machine out of memory does; app requests "
    "then answer 503 and the worker dies where a block cannot fail "
    "(0 = no limit)",
    NULL};

static srv_flag_t srv__id = -1;
static srv_counter_t *srv__refusals;

/* The oom events: at most one a second, the rest counted into the next. */
static _Atomic uint64_t srv__said_ms;
static _Atomic uint64_t srv__unsaid;
/* The site of this thread's last refusal, for the OOM handler's event. */
static __thread char srv__last_site[SRV_NAME_MAX];

int srv_memlimit_register(uint64_t bytes) {
  srv__flag.def = (double)bytes;
  return srv_flags_register(&srv__flag, 1, &srv__id);
}

uint64_t srv_memlimit_refusals(void) { return srv_counter_get(srv__refusals); }

/* The flag, applied to the heap when it changed. */
static void srv__apply(void) {
  uint64_t want = srv__id >= 0 ? srv_flags_u64(srv__id) : 0;
  if (want != lab_limit()) lab_set_limit(want);
}

static void srv__begin(srv_req_t *rq) {
  (void)rq;
  srv__apply();
}

/* The heap's refusal callback: runs on the allocating thread, allocates
 * nothing. */
static void srv__refused(size_t size, const lab_site_t *site, void *ctx) {
  (void)ctx;
  srv_counter_add(srv__refusals, 1);
  srv_sites_name(site, srv__last_site, sizeof srv__last_site);
  srv_http_note_oom(size, srv__last_site);
  uint64_t now = srv_clock_mono_ns() / 1000000u + 1;
  uint64_t said = atomic_load(&srv__said_ms);
  if ((said && now - said < 1000) || !atomic_compare_exchange_strong(&srv__said_ms, &said, now)) {
    atomic_fetch_add(&srv__unsaid, 1);
    return;
  }
  uint64_t more = atomic_exchange(&srv__unsaid, 0);
  lab_stats_t st;
  lab_stats(&st);
  char also[64] = "";
  if (more) snprintf(also, sizeof also, "; %llu more refused since the last oom event",
                     (unsigned long long)more);
  srv_events_log_at(SRV_EVENT_oom, site, size,
                    "out of memory: the heap refused %zu bytes at %s (heap %llu bytes "
                    "mapped, limit %llu)%s",
                    size, srv__last_site, (unsigned long long)st.mapped_bytes,
                    (unsigned long long)lab_limit(), also);
}

/* The never-NULL family's handler: the block cannot fail, so the worker
 * ends, with a status the supervisor reads as out of memory. */
static void srv__oom_exit(size_t size) {
  srv_events_log(SRV_EVENT_oom,
                 "out of memory: %zu bytes at %s, a block that cannot fail; worker "
                 "%d exits with status %d",
                 size, srv__last_site[0] ? srv__last_site : "?", (int)getpid(),
                 SRV_MEMLIMIT_EXIT);
  fprintf(stderr, "leaklab: out of memory allocating %zu bytes at %s; exiting\n", size,
          srv__last_site[0] ? srv__last_site : "?");
  _exit(SRV_MEMLIMIT_EXIT);
}

void srv_memlimit_install(void) {
  lab_set_refusal_callback(srv__refused, NULL);
  lab_set_oom_handler(srv__oom_exit);
  srv__apply();
}

int srv_memlimit_setup(void) {
  srv__refusals = srv_counters_add(
      "oom_refusals", "allocations the heap refused for want of memory "
                      "(worker.memory_limit_bytes, or the OS)");
  if (!srv__refusals) return SRV_ENOMEM;
  return srv_http_add_hooks(&(srv_http_hooks_t){.begin = srv__begin});
}

/* events.c - the event log in the shared region. */
#include "observe/events.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "observe/workers.h"

SRV_SHM_SLOT(srv_event_slot, srv_event_t);

/* The block this module owns in the region. */
typedef struct srv__events_block {
  _Atomic uint64_t event_n;           /* events recorded (last seq) */
  _Atomic uint64_t life_n;            /* lifecycle events recorded */
  struct srv_event_slot events[SRV_EVENTS_MAX];
  struct srv_event_slot life[SRV_LIFE_MAX]; /* every event but heap errors
                                         again, so a flood of heap errors
                                         cannot push flag changes,
                                         recycles and crashes out */
} srv__events_block_t;

static srv__events_block_t *srv__eb;

int srv_events_setup(void) {
  srv__eb = srv_shm_alloc(sizeof *srv__eb);
  return srv__eb ? SRV_OK : SRV_ENOMEM;
}

static const char *const srv__event_names[SRV_EVENT_TYPE_COUNT] = {
#define SRV__EVENT_NAME(name, desc) #name,
    SRV_EVENT_TYPES(SRV__EVENT_NAME)
#undef SRV__EVENT_NAME
};

const char *srv_events_type_name(uint32_t type) {
  return type < SRV_EVENT_TYPE_COUNT ? srv__event_names[type] : "unknown";
}

/* Stamp and store an event; returns its sequence number. */
static uint64_t srv__events_put(srv_event_t *ev) {
  uint64_t seq = atomic_fetch_add(&srv__eb->event_n, 1) + 1;
  ev->seq = seq;
  ev->t_ms = srv_clock_now_ms();
  ev->pid = (int32_t)getpid();
  ev->generation = (uint32_t)(srv_workers_self.generation
                                  ? srv_workers_self.generation
                                  : atomic_load(&srv_workers->generation));
  struct srv_event_slot *slot = &srv__eb->events[(seq - 1) % SRV_EVENTS_MAX];
  srv_shm_slot_write(&slot->head, slot->w, ev, sizeof *ev, seq);
  if (ev->type != SRV_EVENT_heap_error) {
    uint64_t i = atomic_fetch_add(&srv__eb->life_n, 1) + 1;
    slot = &srv__eb->life[(i - 1) % SRV_LIFE_MAX];
    srv_shm_slot_write(&slot->head, slot->w, ev, sizeof *ev, i);
  }
  return seq;
}

/* A lifecycle event, about a block of `size` bytes at `site` if any. */
static void srv__events_vlog(srv_event_type_t type, const lab_site_t *site, size_t size,
                             const char *fmt, va_list ap) {
  srv_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  ev.kind = -1;
  ev.size = size;
  srv_sites_name(site, ev.site, sizeof ev.site);
  vsnprintf(ev.text, sizeof ev.text, fmt, ap);
  srv__events_put(&ev);
}

void srv_events_log(srv_event_type_t type, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  srv__events_vlog(type, NULL, 0, fmt, ap);
  va_end(ap);
}

void srv_events_log_at(srv_event_type_t type, const lab_site_t *site, size_t size,
                       const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  srv__events_vlog(type, site, size, fmt, ap);
  va_end(ap);
}

/* The heap's subscriber: runs on the thread that caught the fault. */
static void srv__on_heap_event(const lab_event_t *e, void *ctx) {
  (void)ctx;
  srv_event_t ev;
  memset(&ev, 0, sizeof ev);
  ev.type = SRV_EVENT_heap_error;
  ev.kind = (int32_t)e->kind;
  ev.size = e->size;
  ev.offset = e->offset;
  ev.ptr = (uint64_t)(uintptr_t)e->ptr;
  srv_sites_name(e->alloc_site ? e->alloc_site : e->site, ev.site,
                       sizeof ev.site);
  srv_sites_name(e->site, ev.seen_at, sizeof ev.seen_at);
  srv_sites_name(e->free_site, ev.freed_at, sizeof ev.freed_at);
  switch (e->kind) {
  case LAB_FAULT_overflow:
  case LAB_FAULT_use_after_free:
    snprintf(ev.text, sizeof ev.text, "%s (first bad byte at offset %ld%s)",
             lab_fault_desc(e->kind), e->offset,
             e->size ? " of the block" : "");
    break;
  case LAB_FAULT_invalid_free:
    if (e->alloc_site)
      snprintf(ev.text, sizeof ev.text, "%s (%ld bytes into a %zu-byte block)",
               lab_fault_desc(e->kind), e->offset, e->size);
    else
      snprintf(ev.text, sizeof ev.text, "%s", lab_fault_desc(e->kind));
    break;
  default:
    snprintf(ev.text, sizeof ev.text, "%s", lab_fault_desc(e->kind));
  }
  srv__events_put(&ev);
}

void srv_events_install(void) { lab_set_event_callback(srv__on_heap_event, NULL); }

uint64_t srv_events_last(void) { return atomic_load(&srv__eb->event_n); }

bool srv_events_get(uint64_t seq, srv_event_t *out) {
  if (!seq || seq > srv_events_last()) return false;
  struct srv_event_slot *slot = &srv__eb->events[(seq - 1) % SRV_EVENTS_MAX];
  return srv_shm_slot_read(&slot->head, slot->w, out, sizeof *out, seq);
}

uint64_t srv_events_first(uint64_t last) {
  return last > SRV_EVENTS_MAX ? last - SRV_EVENTS_MAX + 1 : 1;
}

size_t srv_events_lifecycle(uint64_t after, uint64_t before, size_t max,
                            srv_events_fn fn, void *ctx) {
  uint64_t n = atomic_load(&srv__eb->life_n);
  uint64_t i = n > SRV_LIFE_MAX ? n - SRV_LIFE_MAX + 1 : 1;
  size_t k = 0;
  srv_event_t ev;
  /* Oldest first; sequence numbers grow with the index (two events
   * logged at the same instant may be swapped, no more). */
  for (; i <= n && k < max; i++) {
    struct srv_event_slot *slot = &srv__eb->life[(i - 1) % SRV_LIFE_MAX];
    if (!srv_shm_slot_read(&slot->head, slot->w, &ev, sizeof ev, i)) continue;
    if (ev.seq <= after || ev.seq >= before) continue;
    fn(&ev, ctx);
    k++;
  }
  return k;
}

void srv_events_walk(uint64_t since, uint64_t last, size_t limit,
                     srv_events_fn fn, void *ctx, srv_events_walked_t *out) {
  *out = (srv_events_walked_t){0, 0};
  if (since >= last || !limit) return;
  uint64_t first = srv_events_first(last);
  uint64_t start = since + 1 > first ? since + 1 : first;
  /* Heap errors can come by the thousand a second and overwrite the ring;
   * flag changes, recycles, sheds and crashes among them are kept apart
   * and sent first, in order. */
  uint64_t kept = 0;
  if (start > since + 1) {
    kept = srv_events_lifecycle(since, start, limit, fn, ctx);
    out->sent = kept;
    out->dropped = start - since - 1 - kept;
  }
  srv_event_t ev;
  for (uint64_t seq = start; seq <= last && out->sent < limit; seq++) {
    if (srv_events_get(seq, &ev)) {
      out->sent++;
      fn(&ev, ctx);
      continue;
    }
    struct srv_event_slot *slot = &srv__eb->events[(seq - 1) % SRV_EVENTS_MAX];
    if (srv_shm_slot_abandoned(&slot->head, seq)) {
      out->dropped++;
      continue;
    }
    if (seq + SRV_EVENTS_MAX / 2 > last) break; /* still being written */
    out->dropped++;                              /* overwritten meanwhile */
  }
}

uint64_t srv_events_abandon_next(void) {
  uint64_t seq = atomic_fetch_add(&srv__eb->event_n, 1) + 1;
  struct srv_event_slot *slot = &srv__eb->events[(seq - 1) % SRV_EVENTS_MAX];
  srv_shm_slot_begin(&slot->head, seq);
  return seq;
}

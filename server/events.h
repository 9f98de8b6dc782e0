/* events.h - the event log: heap errors the heap caught (with their call
 * sites) and lifecycle events, in a ring in the shared region. */
#ifndef SRV_EVENTS_H
#define SRV_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "shm.h"

/* Subscribe to the heap's detection events (one subscriber per process). */
void srv_events_install(void);
/* Record a lifecycle event with a formatted message. */
void srv_events_log(srv_event_type_t type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sequence number of the newest event (0: none yet). */
uint64_t srv_events_last(void);
/* Copy event `seq` into *out; false if it was overwritten, is being
 * written or does not exist yet. */
bool srv_events_get(uint64_t seq, srv_event_t *out);
/* The oldest sequence number the main ring may still hold when `last`
 * (srv_events_last) is the newest. */
uint64_t srv_events_first(uint64_t last);
/* Called with each event of a walk. */
typedef void (*srv_events_fn)(const srv_event_t *ev, void *ctx);
/* Call fn, oldest first, for at most max lifecycle events (every type but
 * heap_error) with after < seq < before, from their own ring; returns how
 * many. They outlive the heap errors that overwrite the main ring. */
size_t srv_events_lifecycle(uint64_t after, uint64_t before, size_t max,
                            srv_events_fn fn, void *ctx);
/* Name of an event type ("heap_error", "flags", ...). */
const char *srv_events_type_name(uint32_t type);
/* A site's report name: its name, else "file:line" (basename); "" for
 * NULL. */
void srv_events_site_name(const lab_site_t *site, char *out, size_t cap);

#endif /* SRV_EVENTS_H */

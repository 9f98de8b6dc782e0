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
/* Name of an event type ("heap_error", "flags", ...). */
const char *srv_events_type_name(uint32_t type);
/* A site's report name: its name, else "file:line" (basename); "" for
 * NULL. */
void srv_events_site_name(const lab_site_t *site, char *out, size_t cap);

#endif /* SRV_EVENTS_H */

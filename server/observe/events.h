/* events.h - the event log: heap errors the heap caught (with their call
 * sites) and lifecycle events, in a ring in the shared region. */
#ifndef SRV_EVENTS_H
#define SRV_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "core/shm.h"
#include "observe/sites.h"

#define SRV_EVENTS_MAX 4096    /* events kept */
#define SRV_LIFE_MAX 1024      /* lifecycle events kept apart from them */

/* Heap errors and lifecycle events: X(name, description). */
#define SRV_EVENT_TYPES(X)                                                   \
  X(heap_error, "the heap caught a bad operation")                          \
  X(start, "a worker started")                                              \
  X(stop, "a worker stopped")                                               \
  X(flags, "flags changed")                                                 \
  X(shed, "app requests shed over the memory budget")                       \
  X(recycle, "a worker was recycled")                                       \
  X(crash, "a worker crashed")                                              \
  X(hung, "a worker missed its heartbeat and was replaced")                 \
  X(oom, "the heap ran out of memory: an allocation was refused")          \
  X(conns, "connections refused or closed to protect the server")

typedef enum srv_event_type {
#define SRV__EVENT_ENUM(name, desc) SRV_EVENT_##name,
  SRV_EVENT_TYPES(SRV__EVENT_ENUM)
#undef SRV__EVENT_ENUM
  SRV_EVENT_TYPE_COUNT
} srv_event_type_t;

/* One event. */
typedef struct srv_event {
  uint64_t seq;             /* 1, 2, ... in order of recording */
  uint64_t t_ms;            /* unix ms */
  uint32_t type;            /* srv_event_type_t */
  int32_t kind;             /* lab_fault_t of a heap error, else -1 */
  int32_t pid;              /* process that recorded it */
  uint32_t generation;      /* worker generation */
  uint64_t size;            /* requested size of the block, or 0 */
  int64_t offset;           /* first bad byte relative to the block */
  uint64_t ptr;             /* the pointer involved */
  char site[SRV_NAME_MAX];     /* where the block was allocated, or seen */
  char seen_at[SRV_NAME_MAX];  /* where the bad operation was seen */
  char freed_at[SRV_NAME_MAX]; /* where the block was freed before */
  char text[160];              /* message */
} srv_event_t;

/* Make the event rings' block in the region; SRV_ENOMEM. */
int srv_events_setup(void);

/* Subscribe to the heap's detection events (one subscriber per process). */
void srv_events_install(void);
/* Record a lifecycle event with a formatted message. */
void srv_events_log(srv_event_type_t type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Record an event about a block of `size` bytes wanted at `site` (either
 * may be 0/NULL), with a formatted message. */
void srv_events_log_at(srv_event_type_t type, const lab_site_t *site, size_t size,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
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
/* What srv_events_walk did. */
typedef struct srv_events_walked {
  size_t sent;              /* events passed to fn */
  uint64_t dropped;         /* events after `since` that are gone: heap
                               errors the ring lost, and slots a writer
                               killed mid-write left unfinished */
} srv_events_walked_t;

/* Call fn, oldest first, for at most `limit` events after `since` and
 * up to `last` (srv_events_last, read by the caller before):
 * lifecycle events the main ring lost first (kept in their own ring),
 * then the main ring, stopping at a slot still being written (the next
 * walk picks it up) and skipping one a dead writer abandoned. */
void srv_events_walk(uint64_t since, uint64_t last, size_t limit,
                     srv_events_fn fn, void *ctx, srv_events_walked_t *out);
/* Claim the next sequence number and start writing its slot without
 * finishing it, then return the number: what a writer killed in the
 * middle leaves behind. For the tests that play that writer. */
uint64_t srv_events_abandon_next(void);
/* Name of an event type ("heap_error", "flags", ...). */
const char *srv_events_type_name(uint32_t type);

#endif /* SRV_EVENTS_H */

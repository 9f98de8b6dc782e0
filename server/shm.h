/* shm.h - everything that must outlive a worker, in one shared region.
 *
 * The region is one anonymous MAP_SHARED mapping made before any fork, so a
 * supervisor and its successive workers see the same flags, history,
 * lifetime counters and event log. It holds fixed-size arrays and atomics
 * only, never pointers. Rings of multi-word records use a per-slot sequence
 * word (odd while written) so readers never block the writer. */
#ifndef SRV_SHM_H
#define SRV_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lab/alloc.h>

#include "flags.h"
#include "routes.h"

#define SRV_HIST_CAP 57600     /* samples the ring can hold: 4 h at 250 ms */
#define SRV_HIST_DEFAULT 14400 /* 1 h at 250 ms */
#define SRV_TOP_SITES 8        /* largest sites kept with each sample */
#define SRV_SITES_MAX 256      /* call sites whose history is kept */
#define SRV_SITE_RING 512      /* per-site snapshots (>= 128 s) */
#define SRV_EVENTS_MAX 4096    /* events kept */
#define SRV_LIFE_MAX 1024      /* lifecycle events kept apart from them */
#define SRV_NAME_MAX 48        /* site names, NUL included */
#define SRV_WORKER_SLOTS 16    /* per-worker counters, by generation */

/* Statuses counted one by one; others count as "other". */
#define SRV_STATUS_MAP(X)                                                    \
  X(200) X(201) X(400) X(401) X(404) X(405) X(413) X(500) X(503)

enum {
#define SRV__STATUS_ENUM(code) SRV_STATUS_##code,
  SRV_STATUS_MAP(SRV__STATUS_ENUM)
#undef SRV__STATUS_ENUM
  SRV_STATUS_OTHER,
  SRV_STATUS_COUNT
};

/* Upper bounds of the request-latency histogram: X(label, nanoseconds). */
#define SRV_LATENCY_BUCKETS(X)                                               \
  X("0.0001", 100000) X("0.00025", 250000) X("0.0005", 500000)               \
  X("0.001", 1000000) X("0.0025", 2500000) X("0.005", 5000000)               \
  X("0.01", 10000000) X("0.025", 25000000) X("0.05", 50000000)               \
  X("0.1", 100000000) X("0.25", 250000000) X("0.5", 500000000)               \
  X("1", 1000000000) X("2.5", 2500000000)

enum {
#define SRV__LAT_COUNT(label, ns) +1
  SRV_LATENCY_NBUCKETS = 0 SRV_LATENCY_BUCKETS(SRV__LAT_COUNT)
#undef SRV__LAT_COUNT
};

/* Lifetime counters: X(name, help). Exported as leaklab_<name>_total. */
#define SRV_COUNTER_FIELDS(X)                                                \
  X(requests, "requests answered since the first worker started")           \
  X(shed_requests, "app requests refused with 503 over guard.budget_bytes") \
  X(recycles, "workers replaced by the supervisor")                         \
  X(crashes, "workers that died and were restarted")                        \
  X(scope_left_blocks, "blocks requests left live when they ended")         \
  X(scope_left_bytes, "bytes requests left live when they ended")           \
  X(reclaimed_blocks, "blocks guard.request_scope freed as requests ended") \
  X(reclaimed_bytes, "bytes guard.request_scope freed as requests ended")   \
  X(body_bytes, "request body bytes received")                              \
  X(request_timeouts, "connections answered 408 and closed: a request not "  \
                      "received whole within --request-timeout")

typedef struct srv_counters {
#define SRV__COUNTER_FIELD(name, help) _Atomic uint64_t name;
  SRV_COUNTER_FIELDS(SRV__COUNTER_FIELD)
#undef SRV__COUNTER_FIELD
} srv_counters_t;

/* One history sample. */
typedef struct srv_sample {
  uint64_t t_ms;            /* wall clock, unix ms */
  uint64_t rss_bytes;       /* resident set of the worker */
  uint64_t vm_bytes;        /* its virtual size */
  uint64_t cpu_ms;          /* its user + system CPU time */
#define SRV__SAMPLE_HEAP(name, kind, metric, help) uint64_t heap_##name;
  LAB_STAT_FIELDS(SRV__SAMPLE_HEAP)
#undef SRV__SAMPLE_HEAP
  uint64_t errors[LAB_FAULT_COUNT]; /* caught faults by kind */
  uint64_t requests;        /* lifetime requests answered */
  double rate_per_s;        /* requests per second since the last sample */
  uint64_t top_bytes[SRV_TOP_SITES]; /* live bytes of the largest sites */
  uint16_t top_site[SRV_TOP_SITES];  /* their index in the site table + 1 */
} srv_sample_t;

#define SRV__WORDS(type) ((sizeof(type) + 7) / 8)

/* Heap errors and lifecycle events: X(name, description). */
#define SRV_EVENT_TYPES(X)                                                   \
  X(heap_error, "the heap caught a bad operation")                          \
  X(start, "a worker started")                                              \
  X(stop, "a worker stopped")                                               \
  X(flags, "flags changed")                                                 \
  X(shed, "app requests shed over the memory budget")                       \
  X(recycle, "a worker was recycled")                                       \
  X(crash, "a worker crashed")

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

/* A sequenced slot: seq is 2*tag while slot holds record `tag`, odd while
 * being written. */
#define SRV__SLOT(name, type)                                                \
  struct name {                                                              \
    _Atomic uint64_t seq;                                                    \
    _Atomic uint64_t w[SRV__WORDS(type)];                                    \
  }

SRV__SLOT(srv_sample_slot, srv_sample_t);
SRV__SLOT(srv_event_slot, srv_event_t);

/* A call site known to the history. Written once before publication. */
typedef struct srv_site_entry {
  char name[SRV_NAME_MAX];   /* its name, or file:line */
  _Atomic uint64_t live_since_ms; /* when it last went from 0 live blocks to
                                     some; 0 while it has none */
} srv_site_entry_t;

/* Live bytes of every known site at one instant. */
typedef struct srv_site_snap {
  _Atomic uint64_t seq;               /* as in SRV__SLOT */
  _Atomic uint64_t t_ms;              /* unix ms */
  _Atomic uint64_t bytes[SRV_SITES_MAX]; /* live bytes by site index */
} srv_site_snap_t;

typedef struct srv_shm {
  uint64_t magic;                     /* SRV_SHM_MAGIC */
  uint64_t size;                      /* bytes mapped */
  uint64_t started_at_ms;             /* when the region was made */
  uint32_t hist_len;                  /* samples kept (<= SRV_HIST_CAP) */
  uint32_t sample_ms;                 /* sampling interval */
  uint64_t supervisor_pid;            /* the supervisor, or the one process */
  _Atomic uint64_t generation;        /* serving worker's generation, 1 for
                                         the first */
  _Atomic uint64_t worker_pid;        /* the serving worker (0: none) */
  _Atomic uint64_t successor_pid;     /* a worker forked and not yet
                                         serving (0: none) */
  _Atomic uint64_t worker_requests[SRV_WORKER_SLOTS]; /* requests answered
                                         by the worker of generation g, at
                                         [g % SRV_WORKER_SLOTS] */
  _Atomic uint64_t worker_limit[SRV_WORKER_SLOTS]; /* the count at which
                                         that worker sends the supervisor
                                         SIGUSR1 (0: never) */
  pthread_mutex_t sample_lock;        /* process-shared, robust: one
                                         sampler writes at a time */
  _Atomic uint64_t flags[SRV_FLAG_COUNT]; /* values, as double bits */
  _Atomic uint64_t flags_version;     /* bumped on every change */
  _Atomic uint64_t shedding;          /* 1 while over budget (for events) */
  srv_counters_t counters;            /* lifetime counters */
  _Atomic uint64_t by_route_status[SRV_ROUTE_COUNT][SRV_STATUS_COUNT];
  _Atomic uint64_t latency[SRV_ROUTE_COUNT][SRV_LATENCY_NBUCKETS + 1];
  _Atomic uint64_t latency_sum_ns[SRV_ROUTE_COUNT];
  _Atomic uint64_t hist_n;            /* samples written since start */
  _Atomic uint64_t site_n;            /* sites in sites[] */
  _Atomic uint64_t snap_n;            /* site snapshots written */
  _Atomic uint64_t event_n;           /* events recorded (last seq) */
  _Atomic uint64_t life_n;            /* lifecycle events recorded */
  srv_site_entry_t sites[SRV_SITES_MAX];
  srv_site_snap_t snaps[SRV_SITE_RING];
  struct srv_event_slot events[SRV_EVENTS_MAX];
  struct srv_event_slot life[SRV_LIFE_MAX]; /* every event but heap errors
                                         again, so a flood of heap errors
                                         cannot push flag changes,
                                         recycles and crashes out */
  struct srv_sample_slot hist[SRV_HIST_CAP]; /* last: pages past hist_len
                                               are never touched */
} srv_shm_t;

#define SRV_SHM_MAGIC 0x6c65616b6c616231ull /* "leaklab1" */

/* The region of this process (set by srv_shm_create). */
extern srv_shm_t *srv_shm;

/* Who this process is; process-local, not in the region. */
typedef struct srv_shm_self {
  uint64_t generation;      /* its worker generation; 0 in the supervisor */
  uint64_t started_ms;      /* when the worker started, unix ms */
} srv_shm_self_t;

extern srv_shm_self_t srv_shm_self;

/* Map and initialise the region; hist_len samples at sample_ms. Returns
 * SRV_ENOMEM or SRV_OK and sets srv_shm. */
int srv_shm_create(uint32_t hist_len, uint32_t sample_ms);
/* Unmap the region. */
void srv_shm_destroy(void);
/* Take the region's sample lock (recovers it from a process that died
 * holding it); pair with srv_shm_unlock. */
void srv_shm_lock(void);
/* Release it. */
void srv_shm_unlock(void);
/* This worker's requests counter in the region. */
_Atomic uint64_t *srv_shm_worker_requests(uint64_t generation);
/* The request count at which the worker of that generation is replaced
 * (0: never), in the region. */
_Atomic uint64_t *srv_shm_worker_limit(uint64_t generation);

/* Write record `tag` (>= 1) of n bytes into a sequenced slot. */
void srv_shm_slot_write(_Atomic uint64_t *seq, _Atomic uint64_t *w,
                        const void *src, size_t n, uint64_t tag);
/* Read record `tag` from a sequenced slot; false if the slot holds another
 * record or is being written. */
bool srv_shm_slot_read(_Atomic uint64_t *seq, _Atomic uint64_t *w,
                       void *dst, size_t n, uint64_t tag);

/* Bump a lifetime counter. */
#define SRV_COUNT(name, n)                                                   \
  atomic_fetch_add_explicit(&srv_shm->counters.name, (uint64_t)(n),          \
                            memory_order_relaxed)
/* Read a lifetime counter. */
#define SRV_COUNTER(name)                                                    \
  atomic_load_explicit(&srv_shm->counters.name, memory_order_relaxed)

/* Index of an HTTP status in the per-status counters. */
int srv_shm_status_index(unsigned status);
/* The status code counted at an index (0 for "other"). */
unsigned srv_shm_status_code(int index);

#endif /* SRV_SHM_H */

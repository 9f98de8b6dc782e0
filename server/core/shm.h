/* shm.h - the shared region: one anonymous MAP_SHARED mapping made before
 * any fork, so a supervisor and its successive workers see the same
 * blocks. The region maps memory and hands out zeroed blocks at set-up;
 * each module owns the type of its block (flags, counters, history,
 * events, ...) and keeps the pointer. Blocks hold fixed-size arrays and
 * atomics only, never pointers into a process. Rings of multi-word records
 * use a per-slot sequence word (odd while written) so readers never block
 * the writer. */
#ifndef SRV_SHM_H
#define SRV_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_SHM_DEFAULT_CAP (64u << 20) /* bytes reserved; untouched pages
                                           cost nothing */

/* Map a region of cap bytes (0: SRV_SHM_DEFAULT_CAP); SRV_ENOMEM or SRV_OK. */
int srv_shm_create(size_t cap);
/* Unmap the region; the blocks handed out are gone with it. */
void srv_shm_destroy(void);
/* A zeroed block of n bytes, aligned to a cache line, from the region;
 * NULL when there is no region or it is full. Only before the first fork:
 * every process must see the same layout. */
void *srv_shm_alloc(size_t n);
/* Bytes handed out so far. */
size_t srv_shm_used(void);
/* When the region was made, unix ms (the server's start). */
uint64_t srv_shm_started_ms(void);

/* Make m a process-shared robust mutex; SRV_ENOMEM on failure. */
int srv_shm_mutex_init(pthread_mutex_t *m);
/* Lock m, recovering it from a process that died holding it. */
void srv_shm_mutex_lock(pthread_mutex_t *m);
/* Lock m if it is free (or its holder died); false if another holds it:
 * for a process that must never wait on one that may be stopped. */
bool srv_shm_mutex_trylock(pthread_mutex_t *m);
/* Unlock m. */
void srv_shm_mutex_unlock(pthread_mutex_t *m);

/* Words a record of `type` takes in a sequenced slot. */
#define SRV_SHM_WORDS(type) ((sizeof(type) + 7) / 8)

/* The head of a sequenced slot: seq is 2*tag while the slot holds record
 * `tag`, 2*tag - 1 while it is being written; writer is the pid of the
 * process that writes it, so a reader can tell a slot being written from
 * one a killed process left half-written. */
typedef struct srv_shm_slot_head {
  _Atomic uint64_t seq;
  _Atomic uint64_t writer;
} srv_shm_slot_head_t;

/* A sequenced slot for records of `type`. */
#define SRV_SHM_SLOT(name, type)                                             \
  struct name {                                                              \
    srv_shm_slot_head_t head;                                                \
    _Atomic uint64_t w[SRV_SHM_WORDS(type)];                                 \
  }

/* Start writing record `tag` (>= 1) and stop there: the slot reads as
 * being written by this process (srv_shm_slot_write begins this way). */
void srv_shm_slot_begin(srv_shm_slot_head_t *h, uint64_t tag);
/* Write record `tag` (>= 1) of n bytes into a sequenced slot. */
void srv_shm_slot_write(srv_shm_slot_head_t *h, _Atomic uint64_t *w,
                        const void *src, size_t n, uint64_t tag);
/* Read record `tag` from a sequenced slot; false if the slot holds another
 * record or is being written. */
bool srv_shm_slot_read(srv_shm_slot_head_t *h, _Atomic uint64_t *w,
                       void *dst, size_t n, uint64_t tag);
/* Whether the slot was left half-written with record `tag` by a process
 * that no longer exists: it will never be finished. */
bool srv_shm_slot_abandoned(srv_shm_slot_head_t *h, uint64_t tag);

#endif /* SRV_SHM_H */

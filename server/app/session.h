/* session.h - the session cache behind /session: a hash table with an LRU
 * list, bounded to SRV_SESSION_CAP entries unless the
 * session.unbounded_cache fault skips the eviction. Entries are detached
 * from request scopes: they are meant to outlive the request. */
#ifndef SRV_SESSION_H
#define SRV_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_SESSION_CAP 256    /* entries kept by the LRU bound */
#define SRV_SESSION_ID_LEN 32  /* hex digits of an id */

/* What a lookup returns. */
typedef struct srv_session_view {
  char id[SRV_SESSION_ID_LEN + 1]; /* the id */
  char user[32];            /* who it belongs to */
  uint64_t created_ms;      /* unix ms */
  uint32_t hits;            /* lookups so far */
} srv_session_view_t;

/* Create a session for `user`; evicts least recently used entries down to
 * the bound unless `unbounded`. Fills *out; SRV_ENOMEM on failure. */
int srv_session_create(const char *user, bool unbounded,
                       srv_session_view_t *out);
/* Look a session up and count the hit; false if there is none. */
bool srv_session_get(const char *id, srv_session_view_t *out);
/* Entries in the cache now. */
size_t srv_session_count(void);
/* The mistake of session.deadlock: hold the cache's lock and ask for the
 * count, which takes the lock again. The thread waits for itself; this
 * never returns. */
void srv_session_count_locked_twice(void);
/* Bytes one entry takes on the heap. */
size_t srv_session_entry_bytes(void);
/* Free every entry and the table (at shutdown). */
void srv_session_clear(void);

#endif /* SRV_SESSION_H */

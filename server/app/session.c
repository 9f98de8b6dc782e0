/* session.c - the session cache: chained hash table plus LRU list. */
#include "app/session.h"

#include <lab/alloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/parse.h"
#include "core/rand.h"

typedef struct srv_session {
  struct srv_session *hnext;   /* next in its bucket */
  struct srv_session *newer;   /* LRU neighbours */
  struct srv_session *older;
  srv_session_view_t v;        /* the visible part */
  char cart[256];              /* per-session state (a shopping cart, say) */
} srv_session_t;

static pthread_mutex_t srv__lock = PTHREAD_MUTEX_INITIALIZER;
static srv_session_t **srv__buckets;
static size_t srv__nbuckets, srv__n;
static srv_session_t *srv__newest, *srv__oldest;

size_t srv_session_entry_bytes(void) { return sizeof(srv_session_t); }

static uint64_t srv__hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void srv__lru_unlink(srv_session_t *e) {
  if (e->newer) e->newer->older = e->older;
  else srv__newest = e->older;
  if (e->older) e->older->newer = e->newer;
  else srv__oldest = e->newer;
  e->newer = e->older = NULL;
}

static void srv__lru_push(srv_session_t *e) {
  e->older = srv__newest;
  e->newer = NULL;
  if (srv__newest) srv__newest->newer = e;
  srv__newest = e;
  if (!srv__oldest) srv__oldest = e;
}

/* Double the table; caller holds the lock. */
static int srv__grow(void) {
  size_t nb = srv__nbuckets ? srv__nbuckets * 2 : 64;
  srv_session_t **b = lab_try_calloc_at(nb, sizeof *b, LAB_SITE("session.table"));
  if (!b) return SRV_ENOMEM;
  lab_detach(b);
  for (size_t i = 0; i < srv__nbuckets; i++) {
    srv_session_t *e = srv__buckets[i];
    while (e) {
      srv_session_t *next = e->hnext;
      size_t k = srv__hash(e->v.id) & (nb - 1);
      e->hnext = b[k];
      b[k] = e;
      e = next;
    }
  }
  lab_free_at(srv__buckets, LAB_SITE("session.table_free"));
  srv__buckets = b;
  srv__nbuckets = nb;
  return SRV_OK;
}

static void srv__remove(srv_session_t *e) {
  size_t k = srv__hash(e->v.id) & (srv__nbuckets - 1);
  srv_session_t **pp = &srv__buckets[k];
  while (*pp && *pp != e) pp = &(*pp)->hnext;
  if (*pp) *pp = e->hnext;
  srv__lru_unlink(e);
  srv__n--;
  lab_free_at(e, LAB_SITE("session.evict"));
}

int srv_session_create(const char *user, bool unbounded,
                       srv_session_view_t *out) {
  srv_session_t *e = lab_try_calloc_at(1, sizeof *e, LAB_SITE("session.entry"));
  if (!e) return SRV_ENOMEM;
  lab_detach(e); /* the cache owns it, not the request */
  uint64_t a = srv_rand_u64(), b = srv_rand_u64();
  snprintf(e->v.id, sizeof e->v.id, "%016llx%016llx", (unsigned long long)a,
           (unsigned long long)b);
  if (!user || !*user) user = "guest";
  /* Cut on a character boundary: the answer stays valid UTF-8. */
  srv_parse_utf8(e->v.user, sizeof e->v.user, user, strlen(user));
  e->v.created_ms = srv_clock_now_ms();
  snprintf(e->cart, sizeof e->cart, "{\"items\":[],\"owner\":\"%s\"}", e->v.user);
  pthread_mutex_lock(&srv__lock);
  if ((srv__n + 1 > srv__nbuckets * 2 || !srv__nbuckets) && srv__grow()) {
    pthread_mutex_unlock(&srv__lock);
    lab_free_at(e, LAB_SITE("session.evict"));
    return SRV_ENOMEM;
  }
  size_t k = srv__hash(e->v.id) & (srv__nbuckets - 1);
  e->hnext = srv__buckets[k];
  srv__buckets[k] = e;
  srv__lru_push(e);
  srv__n++;
  /* The fix for the logical leak: an LRU bound. */
  if (!unbounded)
    while (srv__n > SRV_SESSION_CAP && srv__oldest) srv__remove(srv__oldest);
  *out = e->v;
  pthread_mutex_unlock(&srv__lock);
  return SRV_OK;
}

bool srv_session_get(const char *id, srv_session_view_t *out) {
  bool found = false;
  pthread_mutex_lock(&srv__lock);
  if (srv__nbuckets) {
    srv_session_t *e = srv__buckets[srv__hash(id) & (srv__nbuckets - 1)];
    while (e && strcmp(e->v.id, id)) e = e->hnext;
    if (e) {
      e->v.hits++;
      srv__lru_unlink(e);
      srv__lru_push(e);
      *out = e->v;
      found = true;
    }
  }
  pthread_mutex_unlock(&srv__lock);
  return found;
}

void srv_session_count_locked_twice(void) {
  pthread_mutex_lock(&srv__lock);
  /* The mistake: a function that locks, called with the lock held. */
  size_t n = srv_session_count();
  pthread_mutex_unlock(&srv__lock);
  (void)n;
}

size_t srv_session_count(void) {
  pthread_mutex_lock(&srv__lock);
  size_t n = srv__n;
  pthread_mutex_unlock(&srv__lock);
  return n;
}

void srv_session_clear(void) {
  pthread_mutex_lock(&srv__lock);
  while (srv__oldest) srv__remove(srv__oldest);
  lab_free_at(srv__buckets, LAB_SITE("session.table_free"));
  srv__buckets = NULL;
  srv__nbuckets = 0;
  pthread_mutex_unlock(&srv__lock);
}

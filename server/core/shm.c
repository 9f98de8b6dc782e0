/* shm.c - the shared region: mapping it, handing out blocks, robust locks
 * and sequenced slots. */
#include "core/shm.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"

#define SRV__SHM_MAGIC 0x6c65616b6c616232ull /* "leaklab2" */
#define SRV__SHM_ALIGN 64

/* The region's own header, at its start. */
typedef struct srv__shm_head {
  uint64_t magic;           /* SRV__SHM_MAGIC */
  uint64_t cap;             /* bytes mapped */
  uint64_t used;            /* bytes handed out, the header included */
  uint64_t started_ms;      /* when the region was made */
} srv__shm_head_t;

static srv__shm_head_t *srv__shm;

int srv_shm_create(size_t cap) {
  if (!cap) cap = SRV_SHM_DEFAULT_CAP;
  void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return SRV_ENOMEM;
  srv__shm_head_t *h = p; /* zero-filled by the kernel */
  h->magic = SRV__SHM_MAGIC;
  h->cap = cap;
  h->used = (sizeof *h + SRV__SHM_ALIGN - 1) & ~(uint64_t)(SRV__SHM_ALIGN - 1);
  h->started_ms = srv_clock_now_ms();
  srv__shm = h;
  return SRV_OK;
}

void srv_shm_destroy(void) {
  if (!srv__shm) return;
  munmap(srv__shm, srv__shm->cap);
  srv__shm = NULL;
}

void *srv_shm_alloc(size_t n) {
  if (!srv__shm) return NULL;
  uint64_t size = ((uint64_t)n + SRV__SHM_ALIGN - 1) & ~(uint64_t)(SRV__SHM_ALIGN - 1);
  if (size < n || size > srv__shm->cap - srv__shm->used) return NULL;
  void *p = (char *)srv__shm + srv__shm->used;
  srv__shm->used += size;
  return p;
}

size_t srv_shm_used(void) { return srv__shm ? (size_t)srv__shm->used : 0; }

uint64_t srv_shm_started_ms(void) { return srv__shm ? srv__shm->started_ms : 0; }

int srv_shm_mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  int err = pthread_mutex_init(m, &ma);
  pthread_mutexattr_destroy(&ma);
  return err ? SRV_ENOMEM : SRV_OK;
}

void srv_shm_mutex_lock(pthread_mutex_t *m) {
  /* A process killed while it held the lock leaves it to the next one;
   * what it was writing is a sequenced slot left odd, which readers skip
   * and the next write replaces. */
  if (pthread_mutex_lock(m) == EOWNERDEAD) pthread_mutex_consistent(m);
}

bool srv_shm_mutex_trylock(pthread_mutex_t *m) {
  int err = pthread_mutex_trylock(m);
  if (err == EOWNERDEAD) pthread_mutex_consistent(m);
  return err == 0 || err == EOWNERDEAD;
}

void srv_shm_mutex_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); }

void srv_shm_slot_begin(srv_shm_slot_head_t *h, uint64_t tag) {
  atomic_store_explicit(&h->writer, (uint64_t)getpid(), memory_order_relaxed);
  atomic_store_explicit(&h->seq, 2 * tag - 1, memory_order_release);
}

void srv_shm_slot_write(srv_shm_slot_head_t *h, _Atomic uint64_t *w,
                        const void *src, size_t n, uint64_t tag) {
  /* A seqlock with atomic data words and no fences (TSan knows no
   * fences): each release store keeps the odd sequence before it, each
   * acquire load in the reader keeps the second sequence read after it. */
  srv_shm_slot_begin(h, tag);
  const unsigned char *b = src;
  for (size_t i = 0; i * 8 < n; i++) {
    uint64_t v = 0;
    memcpy(&v, b + i * 8, n - i * 8 < 8 ? n - i * 8 : 8);
    atomic_store_explicit(&w[i], v, memory_order_release);
  }
  atomic_store_explicit(&h->seq, 2 * tag, memory_order_release);
}

bool srv_shm_slot_read(srv_shm_slot_head_t *h, _Atomic uint64_t *w, void *dst,
                       size_t n, uint64_t tag) {
  if (atomic_load_explicit(&h->seq, memory_order_acquire) != 2 * tag) return false;
  unsigned char *b = dst;
  for (size_t i = 0; i * 8 < n; i++) {
    uint64_t v = atomic_load_explicit(&w[i], memory_order_acquire);
    memcpy(b + i * 8, &v, n - i * 8 < 8 ? n - i * 8 : 8);
  }
  return atomic_load_explicit(&h->seq, memory_order_relaxed) == 2 * tag;
}

bool srv_shm_slot_abandoned(srv_shm_slot_head_t *h, uint64_t tag) {
  if (atomic_load_explicit(&h->seq, memory_order_acquire) != 2 * tag - 1)
    return false;
  pid_t pid = (pid_t)atomic_load_explicit(&h->writer, memory_order_relaxed);
  /* A writer that exists (or is not ours to signal) may still finish; a
   * dead one's zombie counts as existing until its parent reaps it. */
  return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* shm.c - the shared region: mapping it and its sequenced slots. */
#include "shm.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "proc.h"

srv_shm_t *srv_shm;
srv_shm_self_t srv_shm_self;

int srv_shm_create(uint32_t hist_len, uint32_t sample_ms) {
  size_t size = sizeof(srv_shm_t);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return SRV_ENOMEM;
  srv_shm_t *s = p; /* zero-filled by the kernel */
  s->magic = SRV_SHM_MAGIC;
  s->size = size;
  s->started_at_ms = srv_proc_now_ms();
  s->hist_len = hist_len ? (hist_len > SRV_HIST_CAP ? SRV_HIST_CAP : hist_len)
                         : SRV_HIST_DEFAULT;
  s->sample_ms = sample_ms ? sample_ms : 250;
  s->supervisor_pid = (uint64_t)getpid();
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  int err = pthread_mutex_init(&s->sample_lock, &ma);
  pthread_mutexattr_destroy(&ma);
  if (err) {
    munmap(p, size);
    return SRV_ENOMEM;
  }
  srv_shm = s;
  srv_flags_init();
  return SRV_OK;
}

void srv_shm_destroy(void) {
  if (!srv_shm) return;
  munmap(srv_shm, srv_shm->size);
  srv_shm = NULL;
}

void srv_shm_lock(void) {
  /* A worker killed while it held the lock leaves it to the next one;
   * what it was writing is a sequenced slot left odd, which readers skip
   * and the next write replaces. */
  if (pthread_mutex_lock(&srv_shm->sample_lock) == EOWNERDEAD)
    pthread_mutex_consistent(&srv_shm->sample_lock);
}

void srv_shm_unlock(void) { pthread_mutex_unlock(&srv_shm->sample_lock); }

_Atomic uint64_t *srv_shm_worker_requests(uint64_t generation) {
  return &srv_shm->worker_requests[generation % SRV_WORKER_SLOTS];
}

_Atomic uint64_t *srv_shm_worker_limit(uint64_t generation) {
  return &srv_shm->worker_limit[generation % SRV_WORKER_SLOTS];
}

void srv_shm_slot_write(_Atomic uint64_t *seq, _Atomic uint64_t *w,
                        const void *src, size_t n, uint64_t tag) {
  /* A seqlock with atomic data words and no fences (TSan knows no
   * fences): each release store keeps the odd sequence before it, each
   * acquire load in the reader keeps the second sequence read after it. */
  atomic_store_explicit(seq, 2 * tag - 1, memory_order_relaxed);
  const unsigned char *b = src;
  for (size_t i = 0; i * 8 < n; i++) {
    uint64_t v = 0;
    memcpy(&v, b + i * 8, n - i * 8 < 8 ? n - i * 8 : 8);
    atomic_store_explicit(&w[i], v, memory_order_release);
  }
  atomic_store_explicit(seq, 2 * tag, memory_order_release);
}

bool srv_shm_slot_read(_Atomic uint64_t *seq, _Atomic uint64_t *w, void *dst,
                       size_t n, uint64_t tag) {
  if (atomic_load_explicit(seq, memory_order_acquire) != 2 * tag) return false;
  unsigned char *b = dst;
  for (size_t i = 0; i * 8 < n; i++) {
    uint64_t v = atomic_load_explicit(&w[i], memory_order_acquire);
    memcpy(b + i * 8, &v, n - i * 8 < 8 ? n - i * 8 : 8);
  }
  return atomic_load_explicit(seq, memory_order_relaxed) == 2 * tag;
}

static const unsigned srv__status_codes[SRV_STATUS_COUNT] = {
#define SRV__STATUS_CODE(code) code,
    SRV_STATUS_MAP(SRV__STATUS_CODE)
#undef SRV__STATUS_CODE
    0,
};

int srv_shm_status_index(unsigned status) {
  for (int i = 0; i < SRV_STATUS_OTHER; i++)
    if (srv__status_codes[i] == status) return i;
  return SRV_STATUS_OTHER;
}

unsigned srv_shm_status_code(int index) {
  return index >= 0 && index < SRV_STATUS_COUNT ? srv__status_codes[index] : 0;
}

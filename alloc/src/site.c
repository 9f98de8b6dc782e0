/* site.c - the call-site registry: a site gets an id on first use. */
#include "internal.h"

static pthread_mutex_t lab__site_lock = PTHREAD_MUTEX_INITIALIZER;
static const lab_site_t *lab__sites[LAB__MAX_SITES];
static _Atomic uint32_t lab__nsites = 1; /* id 0 means "unknown" */

uint16_t lab__site_id_new(const lab_site_t *site) {
  int r = lab_site_register((lab_site_t *)site);
  return r > 0 ? (uint16_t)r : 0;
}

int lab_site_register(lab_site_t *site) {
  if (!site) return LAB_EINVAL;
  pthread_mutex_lock(&lab__site_lock);
  uint32_t id = __atomic_load_n(&site->id, __ATOMIC_ACQUIRE);
  if (!id) {
    uint32_t n = atomic_load(&lab__nsites);
    if (n >= LAB__MAX_SITES) {
      pthread_mutex_unlock(&lab__site_lock);
      return LAB_ENOSPC;
    }
    id = n;
    __atomic_store_n(&lab__sites[id], site, __ATOMIC_RELEASE);
    atomic_store(&lab__nsites, n + 1);
    __atomic_store_n(&site->id, id, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&lab__site_lock);
  return (int)id;
}

const lab_site_t *lab__site_at(uint16_t id) {
  if (!id || id >= atomic_load(&lab__nsites)) return NULL;
  return __atomic_load_n(&lab__sites[id], __ATOMIC_ACQUIRE);
}

uint32_t lab__site_limit(void) { return atomic_load(&lab__nsites); }

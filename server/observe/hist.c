/* hist.c - the sampler thread and the history rings. */
#include "observe/hist.h"

#include <pthread.h>
#include <lab/alloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/procfs.h"
#include "core/shm.h"
#include "http/http.h"
#include "http/reqstats.h"
#include "observe/sites.h"
#include "observe/workers.h"

#define SRV__LAB_SITES 4096    /* the heap's site table size */
#define SRV__SNAP_MS 250       /* site snapshots at most this often */
#define SRV__GROWTH_WINDOW_MS 60000

SRV_SHM_SLOT(srv_sample_slot, srv_sample_t);

/* A call site known to the history. Written once before publication. */
typedef struct srv__site_entry {
  char name[SRV_NAME_MAX];   /* its name, or file:line */
  _Atomic uint64_t live_since_ms; /* when it last went from 0 live blocks to
                                     some; 0 while it has none */
} srv__site_entry_t;

/* Live bytes of every known site at one instant. */
typedef struct srv__site_snap {
  _Atomic uint64_t seq;               /* as in SRV_SHM_SLOT */
  _Atomic uint64_t t_ms;              /* unix ms */
  _Atomic uint64_t bytes[SRV_SITES_MAX]; /* live bytes by site index */
} srv__site_snap_t;

/* The block this module owns in the region. */
typedef struct srv__hist_block {
  uint32_t hist_len;                  /* samples kept (<= SRV_HIST_CAP) */
  uint32_t sample_ms;                 /* sampling interval */
  pthread_mutex_t sample_lock;        /* process-shared, robust: one
                                         sampler writes at a time */
  _Atomic uint64_t hist_n;            /* samples written since start */
  _Atomic uint64_t site_n;            /* sites in sites[] */
  _Atomic uint64_t snap_n;            /* site snapshots written */
  srv__site_entry_t sites[SRV_SITES_MAX];
  srv__site_snap_t snaps[SRV_SITE_RING];
  struct srv_sample_slot hist[];      /* hist_len of them */
} srv__hist_block_t;

static srv__hist_block_t *srv__hb;

int srv_hist_setup(uint32_t hist_len, uint32_t sample_ms) {
  uint32_t len = hist_len ? (hist_len > SRV_HIST_CAP ? SRV_HIST_CAP : hist_len)
                          : SRV_HIST_DEFAULT;
  srv__hb = srv_shm_alloc(sizeof *srv__hb + len * sizeof srv__hb->hist[0]);
  if (!srv__hb) return SRV_ENOMEM;
  srv__hb->hist_len = len;
  srv__hb->sample_ms = sample_ms ? sample_ms : 250;
  return srv_shm_mutex_init(&srv__hb->sample_lock);
}

uint32_t srv_hist_len(void) { return srv__hb->hist_len; }
uint32_t srv_hist_sample_ms(void) { return srv__hb->sample_ms; }

static pthread_t srv__sampler;
static bool srv__running;
static pthread_mutex_t srv__lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t srv__wake;
static bool srv__stop;

/* Sampler-thread state. */
static lab_site_stats_t srv__site_stats[SRV__LAB_SITES];
static int16_t srv__index_of[SRV__LAB_SITES + 1]; /* heap id -> index + 1 */
static uint64_t srv__snap_bytes[SRV_SITES_MAX];
static uint64_t srv__snap_blocks[SRV_SITES_MAX];
static uint64_t srv__last_snap_ms;

unsigned srv_hist_nsites(void) {
  return (unsigned)atomic_load_explicit(&srv__hb->site_n, memory_order_acquire);
}

const char *srv_hist_site_name(unsigned i) {
  return i < srv_hist_nsites() ? srv__hb->sites[i].name : "";
}

int srv_hist_site_find(const char *name) {
  unsigned n = srv_hist_nsites();
  for (unsigned i = 0; i < n; i++)
    if (!strcmp(srv__hb->sites[i].name, name)) return (int)i;
  return -1;
}

uint64_t srv_hist_live_since(unsigned i) {
  return i < SRV_SITES_MAX ? atomic_load(&srv__hb->sites[i].live_since_ms) : 0;
}

/* Table index of a heap site, adding it under its name; -1 when full.
 * Only a sampler adds entries (under the region's sample lock). */
static int srv__site_index(uint32_t heap_id, const lab_site_t *site) {
  if (heap_id > SRV__LAB_SITES) return -1;
  if (srv__index_of[heap_id]) return srv__index_of[heap_id] - 1;
  char name[SRV_NAME_MAX];
  srv_sites_name(site, name, sizeof name);
  int idx = srv_hist_site_find(name);
  if (idx < 0) {
    unsigned n = srv_hist_nsites();
    if (n >= SRV_SITES_MAX) return -1;
    memcpy(srv__hb->sites[n].name, name, sizeof name);
    atomic_store(&srv__hb->sites[n].live_since_ms, 0);
    atomic_store_explicit(&srv__hb->site_n, n + 1, memory_order_release);
    idx = (int)n;
  }
  srv__index_of[heap_id] = (int16_t)(idx + 1);
  return idx;
}

bool srv_hist_sample(void) {
  srv_sample_t s;
  memset(&s, 0, sizeof s);
  /* One history for every worker: only the serving one samples, and the
   * lock keeps a handover's old and new samplers from writing at once.
   * Never waited for: the holder may be a worker stopped or hung in the
   * middle of a sample, which is only killed once its successor serves,
   * and a successor takes its first sample before it says it serves. */
  if (!srv_shm_mutex_trylock(&srv__hb->sample_lock)) return false;
  if (!srv_workers_serving()) {
    srv_shm_mutex_unlock(&srv__hb->sample_lock);
    return false;
  }
  s.t_ms = srv_clock_now_ms();
  srv_procfs_mem(&s.rss_bytes, &s.vm_bytes);
  s.cpu_ms = (uint64_t)(srv_procfs_cpu_seconds() * 1000);
  lab_stats_t st;
  lab_stats(&st);
#define SRV__COPY_HEAP(name, kind, metric, help) s.heap_##name = st.name;
  LAB_STAT_FIELDS(SRV__COPY_HEAP)
#undef SRV__COPY_HEAP
  memcpy(s.errors, st.errors, sizeof s.errors);
  s.requests = srv_reqstats_total();
  srv_reqstats_totals(s.by_status);

  uint64_t n = atomic_load(&srv__hb->hist_n);
  srv_sample_t prev;
  if (n && srv_hist_get(n, &prev) && s.t_ms > prev.t_ms)
    s.rate_per_s = (double)(s.requests - prev.requests) * 1000.0 /
                   (double)(s.t_ms - prev.t_ms);

  /* Per-site live bytes, summed by name. */
  size_t nsites = lab_site_stats(srv__site_stats, SRV__LAB_SITES);
  if (nsites > SRV__LAB_SITES) nsites = SRV__LAB_SITES;
  memset(srv__snap_bytes, 0, sizeof srv__snap_bytes);
  memset(srv__snap_blocks, 0, sizeof srv__snap_blocks);
  for (size_t k = 0; k < nsites; k++) {
    const lab_site_stats_t *ss = &srv__site_stats[k];
    if (!ss->site || (!ss->live_blocks && !ss->total_allocs)) continue;
    int idx = srv__site_index((uint32_t)k + 1, ss->site);
    if (idx < 0) continue;
    srv__snap_bytes[idx] += ss->live_bytes;
    srv__snap_blocks[idx] += ss->live_blocks;
  }
  unsigned known = srv_hist_nsites();
  for (unsigned i = 0; i < known; i++) {
    _Atomic uint64_t *since = &srv__hb->sites[i].live_since_ms;
    if (!srv__snap_blocks[i]) atomic_store(since, 0);
    else if (!atomic_load(since)) atomic_store(since, s.t_ms);
    /* Keep the largest sites with the sample (insertion into top-k). */
    uint64_t b = srv__snap_bytes[i];
    if (!b) continue;
    int j = SRV_TOP_SITES;
    while (j > 0 && (!s.top_site[j - 1] || s.top_bytes[j - 1] < b)) j--;
    if (j >= SRV_TOP_SITES) continue;
    memmove(&s.top_bytes[j + 1], &s.top_bytes[j],
            (SRV_TOP_SITES - 1 - j) * sizeof s.top_bytes[0]);
    memmove(&s.top_site[j + 1], &s.top_site[j],
            (SRV_TOP_SITES - 1 - j) * sizeof s.top_site[0]);
    s.top_bytes[j] = b;
    s.top_site[j] = (uint16_t)(i + 1);
  }

  /* The site snapshot ring, at most every SRV__SNAP_MS. */
  if (s.t_ms >= srv__last_snap_ms + SRV__SNAP_MS || s.t_ms < srv__last_snap_ms) {
    srv__last_snap_ms = s.t_ms;
    uint64_t tag = atomic_load(&srv__hb->snap_n) + 1;
    srv__site_snap_t *snap = &srv__hb->snaps[(tag - 1) % SRV_SITE_RING];
    /* A seqlock as in srv_shm_slot_write. */
    atomic_store_explicit(&snap->seq, 2 * tag - 1, memory_order_relaxed);
    atomic_store_explicit(&snap->t_ms, s.t_ms, memory_order_release);
    for (unsigned i = 0; i < SRV_SITES_MAX; i++)
      atomic_store_explicit(&snap->bytes[i], srv__snap_bytes[i],
                            memory_order_release);
    atomic_store_explicit(&snap->seq, 2 * tag, memory_order_release);
    atomic_store(&srv__hb->snap_n, tag);
  }

  uint64_t tag = n + 1;
  struct srv_sample_slot *slot = &srv__hb->hist[(tag - 1) % srv__hb->hist_len];
  srv_shm_slot_write(&slot->head, slot->w, &s, sizeof s, tag);
  atomic_store(&srv__hb->hist_n, tag);
  srv_shm_mutex_unlock(&srv__hb->sample_lock);
  return true;
}

uint64_t srv_hist_count(void) { return atomic_load(&srv__hb->hist_n); }

bool srv_hist_get(uint64_t n, srv_sample_t *out) {
  uint64_t last = srv_hist_count();
  if (!n || n > last || last - n >= srv__hb->hist_len) return false;
  struct srv_sample_slot *slot = &srv__hb->hist[(n - 1) % srv__hb->hist_len];
  return srv_shm_slot_read(&slot->head, slot->w, out, sizeof *out, n);
}

double srv_hist_rate(void) {
  uint64_t n = srv_hist_count();
  srv_sample_t a, b;
  if (n < 2 || !srv_hist_get(n, &b)) return 0;
  /* Walk back to a sample about a second older. */
  for (uint64_t k = n - 1; k >= 1 && n - k < srv__hb->hist_len; k--) {
    if (!srv_hist_get(k, &a)) break;
    if (b.t_ms - a.t_ms >= 1000 || k == 1) {
      if (b.t_ms <= a.t_ms) return 0;
      return (double)(b.requests - a.requests) * 1000.0 /
             (double)(b.t_ms - a.t_ms);
    }
  }
  return b.rate_per_s;
}

/* Read site i from snapshot `tag`; false if overwritten or in progress. */
static bool srv__snap_read(uint64_t tag, unsigned i, uint64_t *t,
                           uint64_t *bytes) {
  srv__site_snap_t *snap = &srv__hb->snaps[(tag - 1) % SRV_SITE_RING];
  if (atomic_load_explicit(&snap->seq, memory_order_acquire) != 2 * tag)
    return false;
  *t = atomic_load_explicit(&snap->t_ms, memory_order_acquire);
  *bytes = atomic_load_explicit(&snap->bytes[i], memory_order_acquire);
  return atomic_load_explicit(&snap->seq, memory_order_relaxed) == 2 * tag;
}

void srv_hist_growth(unsigned i, srv_growth_t *out) {
  memset(out, 0, sizeof *out);
  if (i >= SRV_SITES_MAX) return;
  uint64_t ts[SRV_SITE_RING], bs[SRV_SITE_RING];
  unsigned m = 0; /* points, newest first */
  uint64_t last = atomic_load(&srv__hb->snap_n);
  for (uint64_t tag = last; tag >= 1 && last - tag < SRV_SITE_RING - 1; tag--) {
    uint64_t t, b;
    if (!srv__snap_read(tag, i, &t, &b)) break;
    if (m && (t > ts[0] || ts[0] - t > SRV__GROWTH_WINDOW_MS)) break;
    ts[m] = t;
    bs[m] = b;
    m++;
  }
  if (m < 2 || ts[0] <= ts[m - 1]) return;
  double window = (double)(ts[0] - ts[m - 1]) / 1000.0;
  out->window_s = window;
  out->bytes_per_s = ((double)bs[0] - (double)bs[m - 1]) / window;
  /* Steady growth: split the window in four quarters by time. */
  if (window < 4.0 || out->bytes_per_s <= 0) return;
  uint64_t mark[5];
  unsigned k = m - 1;
  mark[0] = bs[m - 1];
  for (int q = 1; q <= 4; q++) {
    uint64_t want = ts[m - 1] + (uint64_t)((ts[0] - ts[m - 1]) * q / 4);
    while (k > 0 && ts[k] < want) k--;
    mark[q] = bs[k];
  }
  int grew = 0;
  for (int q = 1; q <= 4; q++) {
    if (mark[q] < mark[q - 1]) return;
    if (mark[q] > mark[q - 1]) grew++;
  }
  out->steady = grew >= 3;
}

/* Until this worker serves (a successor waiting for the handover), look
 * every SRV__WAIT_MS so the first sample comes right after it. */
#define SRV__WAIT_MS 10

static bool srv__sampled;

static void *srv__sampler_main(void *arg) {
  (void)arg;
  /* The observer keeps sampling when the app's heap is exhausted. */
  lab_set_reserve(SRV_HTTP_RESERVE_BYTES);
  pthread_mutex_lock(&srv__lock);
  while (!srv__stop) {
    uint64_t ms = srv__hb->sample_ms;
    if (!srv__sampled && ms > SRV__WAIT_MS) ms = SRV__WAIT_MS;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    while (!srv__stop && pthread_cond_timedwait(&srv__wake, &srv__lock, &ts) == 0) {
    }
    if (srv__stop) break;
    pthread_mutex_unlock(&srv__lock);
    bool sampled = srv_hist_sample();
    pthread_mutex_lock(&srv__lock);
    srv__sampled = sampled;
  }
  pthread_mutex_unlock(&srv__lock);
  return NULL;
}

int srv_hist_start(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&srv__wake, &ca);
  pthread_condattr_destroy(&ca);
  srv__stop = false;
  srv__sampled = srv_hist_sample();
  if (pthread_create(&srv__sampler, NULL, srv__sampler_main, NULL))
    return SRV_ENOMEM;
  srv__running = true;
  return SRV_OK;
}

void srv_hist_stop(void) {
  if (!srv__running) return;
  pthread_mutex_lock(&srv__lock);
  srv__stop = true;
  pthread_cond_signal(&srv__wake);
  pthread_mutex_unlock(&srv__lock);
  pthread_join(srv__sampler, NULL);
  srv__running = false;
}

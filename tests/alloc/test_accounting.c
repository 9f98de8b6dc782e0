/* Accounting is exact: after long random sequences of alloc, calloc,
 * realloc and free, checked against a simple model, by heap and by site. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "events.h"

#define SLOTS 2048
#define STEPS 200000

static lab_site_t site_a = {__FILE__, "model", "site-a", 1, 0};
static lab_site_t site_b = {__FILE__, "model", "site-b", 2, 0};

typedef struct model {
  char *p[SLOTS];
  size_t n[SLOTS];
  const lab_site_t *site[SLOTS];
  uint64_t live_bytes, live_blocks, allocs, frees, peak;
} model_t;

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Sizes from 0 to 256 KiB, mostly small, so every class and large blocks
 * are exercised. */
static size_t draw_size(void) {
  uint64_t r = next_rand();
  switch (r % 16) {
  case 0: return 0;
  case 1: return (r >> 8) % (256 * 1024);
  case 2: case 3: return (r >> 8) % 8192;
  default: return (r >> 8) % 512;
  }
}

static void model_alloc(model_t *m, size_t i, size_t n, const lab_site_t *s) {
  m->n[i] = n;
  m->site[i] = s;
  m->live_bytes += n;
  m->live_blocks++;
  m->allocs++;
  if (m->live_bytes > m->peak) m->peak = m->live_bytes;
}

static void model_free(model_t *m, size_t i) {
  m->live_bytes -= m->n[i];
  m->live_blocks--;
  m->frees++;
  m->p[i] = NULL;
}

static void check_stamp(const model_t *m, size_t i) {
  /* Each block carries its slot index at both ends: nothing was mixed up. */
  if (m->n[i] >= 1)
    assert_int_equal((unsigned char)m->p[i][0], (unsigned char)i);
  if (m->n[i] >= 2)
    assert_int_equal((unsigned char)m->p[i][m->n[i] - 1], (unsigned char)(i >> 3));
}

static void stamp(model_t *m, size_t i) {
  if (m->n[i] >= 1) m->p[i][0] = (char)i;
  if (m->n[i] >= 2) m->p[i][m->n[i] - 1] = (char)(i >> 3);
}

static void random_sequences_match_the_model_exactly(void **state) {
  (void)state;
  static model_t m;
  events_reset();
  lab_stats_t st0, st;
  lab_stats(&st0);
  lab_site_stats_t a0 = site_stats(&site_a), b0 = site_stats(&site_b);
  for (size_t step = 0; step < STEPS; step++) {
    size_t i = next_rand() % SLOTS;
    uint64_t op = next_rand() % 8;
    const lab_site_t *s = (op & 1) ? &site_a : &site_b;
    if (!m.p[i]) {
      size_t n = draw_size();
      m.p[i] = op < 2 ? lab_calloc_at(1, n, s) : lab_malloc_at(n, s);
      assert_non_null(m.p[i]);
      if (op < 2 && n) assert_int_equal(m.p[i][n - 1], 0);
      model_alloc(&m, i, n, s);
      stamp(&m, i);
    } else if (op < 3) {
      check_stamp(&m, i);
      size_t n = draw_size() + 1, keep = n < m.n[i] ? n : m.n[i];
      unsigned char first = keep ? (unsigned char)m.p[i][0] : 0;
      char *q = lab_realloc_at(m.p[i], n, s);
      assert_non_null(q);
      assert_ptr_not_equal(q, m.p[i]); /* always moves */
      if (keep) assert_int_equal((unsigned char)q[0], first);
      model_free(&m, i);
      m.p[i] = q;
      model_alloc(&m, i, n, s);
      stamp(&m, i);
    } else {
      check_stamp(&m, i);
      assert_int_equal(lab_usable_size(m.p[i]), m.n[i]);
      lab_free(m.p[i]);
      model_free(&m, i);
    }
    if (step % 10007 == 0) {
      lab_stats(&st);
      assert_int_equal(st.live_bytes - st0.live_bytes, m.live_bytes);
      assert_int_equal(st.live_blocks - st0.live_blocks, m.live_blocks);
      assert_int_equal(st.total_allocs - st0.total_allocs, m.allocs);
      assert_int_equal(st.total_frees - st0.total_frees, m.frees);
      assert_true(st.peak_live_bytes >= st0.live_bytes + m.live_bytes);
      /* Per site: the two sites together hold exactly the model's bytes. */
      lab_site_stats_t a = site_stats(&site_a), b = site_stats(&site_b);
      assert_int_equal(a.live_bytes - a0.live_bytes + b.live_bytes - b0.live_bytes,
                       m.live_bytes);
      assert_int_equal(a.live_blocks - a0.live_blocks + b.live_blocks - b0.live_blocks,
                       m.live_blocks);
    }
  }
  lab_stats(&st);
  /* Peak: single thread, so exact. */
  assert_int_equal(st.peak_live_bytes, st0.live_bytes + m.peak > st0.peak_live_bytes
                                           ? st0.live_bytes + m.peak
                                           : st0.peak_live_bytes);
  /* The per-site split matches the model too. */
  uint64_t by_a = 0;
  for (size_t i = 0; i < SLOTS; i++)
    if (m.p[i] && m.site[i] == &site_a) by_a += m.n[i];
  assert_int_equal(site_stats(&site_a).live_bytes - a0.live_bytes, by_a);
  for (size_t i = 0; i < SLOTS; i++)
    if (m.p[i]) {
      check_stamp(&m, i);
      lab_free(m.p[i]);
      model_free(&m, i);
    }
  assert_int_equal(events.n, 0);
}

static void overhead_is_24_bytes_per_live_block_plus_structures(void **state) {
  (void)state;
  lab_stats_t st0, st;
  lab_stats(&st0);
  enum { N = 1000 };
  static void *p[N];
  for (int i = 0; i < N; i++) p[i] = lab_malloc(8);
  lab_stats(&st);
  assert_int_equal(st.live_blocks - st0.live_blocks, N);
  assert_true(st.overhead_bytes - st0.overhead_bytes >= 24 * N);
  assert_true(st.mapped_bytes >= st.live_bytes);
  for (int i = 0; i < N; i++) lab_free(p[i]);
}

static void freed_memory_goes_back_to_the_os(void **state) {
  (void)state;
  lab_flush_quarantine();
  lab_trim();
  lab_stats_t st0, st;
  lab_stats(&st0);
  enum { N = 20000 };
  static void *p[N];
  for (int i = 0; i < N; i++) p[i] = lab_malloc(1000);
  lab_stats(&st);
  assert_true(st.mapped_bytes >= st0.mapped_bytes + (uint64_t)N * 1000);
  for (int i = 0; i < N; i++) lab_free(p[i]);
  lab_flush_quarantine();
  lab_stats(&st);
  /* Without trim, only the class's spare pages (1 MiB), its current page
   * (64 KiB) and the headers of segments holding them stay. */
  assert_true(st.mapped_bytes <= st0.mapped_bytes + (1u << 20) + (1u << 16) +
                                     (64u << 10));
  lab_trim();
  lab_stats(&st);
  assert_int_equal(st.mapped_bytes, st0.mapped_bytes);
}

static void at_the_end_live_bytes_is_zero(void **state) {
  (void)state;
  lab_stats_t st;
  lab_stats(&st);
  assert_int_equal(st.live_bytes, 0);
  assert_int_equal(st.live_blocks, 0);
  assert_int_equal(st.total_allocs, st.total_frees);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(random_sequences_match_the_model_exactly),
      cmocka_unit_test(overhead_is_24_bytes_per_live_block_plus_structures),
      cmocka_unit_test(freed_memory_goes_back_to_the_os),
      cmocka_unit_test(at_the_end_live_bytes_is_zero),
  };
  return cmocka_run_group_tests_name("accounting", tests, NULL, NULL);
}

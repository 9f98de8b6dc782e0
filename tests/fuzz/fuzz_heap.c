/* libFuzzer target: the heap API as random sequences of malloc, calloc,
 * realloc, free, scopes and deliberate bad frees, checked against a model.
 * Every bad operation must be reported and change nothing; live bytes must
 * always equal the model's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lab/alloc.h>

#define SLOTS 64

static size_t events;
static void on_event(const lab_event_t *ev, void *ctx) {
  (void)ev;
  (void)ctx;
  events++;
}

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_heap: %s\n", what);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready;
  if (!ready) {
    lab_set_event_callback(on_event, NULL);
    ready = 1;
  }
  char *p[SLOTS] = {0};
  size_t n[SLOTS] = {0};
  lab_stats_t st0, st;
  lab_stats(&st0);
  uint64_t model = 0;
  lab_scope_t *scope = NULL;
  for (size_t i = 0; i + 3 <= size; i += 3) {
    unsigned op = data[i] % 12, k = data[i + 1] % SLOTS;
    size_t len = (size_t)data[i + 2] * (data[i] & 0x80 ? 1021 : 3);
    size_t ev0 = events;
    switch (op) {
    case 0: case 1: case 2: /* allocate into an empty slot */
      if (p[k]) break;
      p[k] = op == 2 ? lab_calloc(1, len) : lab_malloc(len);
      n[k] = len;
      model += len;
      if (len) memset(p[k], (int)k, len);
      break;
    case 3: /* realloc */
      if (!p[k]) break;
      p[k] = lab_realloc(p[k], len + 1);
      if (len + 1 > n[k]) memset(p[k] + n[k], (int)k, len + 1 - n[k]);
      model = model - n[k] + len + 1;
      n[k] = len + 1;
      break;
    case 4: case 5: /* free */
      if (!p[k]) break;
      for (size_t j = 0; j < n[k]; j++)
        check(p[k][j] == (char)k, "block contents changed");
      lab_free(p[k]);
      p[k] = NULL;
      model -= n[k];
      break;
    case 6: { /* double free: reported, skipped */
      if (p[k]) break;
      char *q = lab_malloc(len);
      lab_free(q);
      lab_free(q);
      check(events == ev0 + 1, "double free not reported once");
      break;
    }
    case 7: /* interior pointer */
      if (!p[k] || n[k] < 2) break;
      lab_free(p[k] + 1 + len % (n[k] - 1));
      check(events == ev0 + 1, "interior free not reported once");
      break;
    case 8: { /* stack address */
      char local[8];
      lab_free(local);
      check(events == ev0 + 1, "stack free not reported");
      break;
    }
    case 9: /* overflow by one, then free: reported, memory accounted */
      if (!p[k]) break;
      p[k][n[k]] = 0;
      lab_free(p[k]);
      p[k] = NULL;
      model -= n[k];
      check(events == ev0 + 1, "overflow not reported once");
      break;
    case 10: /* scope open/close with reclaim: frees what it tagged */
      if (scope) {
        lab_scope_report_t r;
        lab_scope_close(scope, LAB_SCOPE_RECLAIM, &r);
        for (int j = 0; j < SLOTS; j++)
          if (p[j] && r.blocks && lab_usable_size(p[j]) == 0) {
            p[j] = NULL; /* reclaimed */
            model -= n[j];
          }
        scope = NULL;
      } else {
        scope = lab_scope_open("fuzz");
      }
      break;
    case 11:
      lab_flush_quarantine();
      break;
    }
    lab_stats(&st);
    check(st.live_bytes - st0.live_bytes == model, "live bytes differ from model");
  }
  if (scope) {
    lab_scope_close(scope, LAB_SCOPE_RECLAIM, NULL);
    for (int j = 0; j < SLOTS; j++)
      if (p[j] && lab_usable_size(p[j]) == 0) {
        p[j] = NULL;
        model -= n[j];
      }
  }
  for (int j = 0; j < SLOTS; j++)
    if (p[j]) {
      lab_free(p[j]);
      model -= n[j];
    }
  lab_stats(&st);
  check(st.live_bytes == st0.live_bytes, "live bytes not back at the start");
  check(lab_check() == 0, "heap check found damage");
  return 0;
}

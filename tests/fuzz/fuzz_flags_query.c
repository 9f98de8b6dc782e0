/* libFuzzer target: POST /api/flags?<query>, without HTTP. The input is
 * the raw query string; srv_flags_parse_query splits and decodes it as MHD
 * does and checks each pair with srv_flags_change_add, the code the
 * handler runs on MHD's pairs.
 *
 * Checked: a success yields one change per pair, of known flags, with
 * values each flag accepts, and reading them back from a query and from a
 * JSON object gives the same changes; a failure leaves nothing to apply
 * and a message and flag name fit to send as JSON; nothing stays live on
 * the heap. Nothing here maps the shared region, so a parse that touched
 * the live flags would crash. */
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "observe/flags.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_setup();
  fuzz_setup_flags();
  return 0;
}

/* Pairs in a query as MHD counts them: one per '&' and one for a
 * non-empty rest. */
static size_t pairs(const uint8_t *data, size_t size) {
  size_t n = 0, start = 0;
  for (size_t i = 0; i < size; i++)
    if (data[i] == '&') n++, start = i + 1;
  return n + (start < size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static srv_flags_change_t c;
  fuzz_mark_t mark;
  fuzz_begin(&mark);
  int err = srv_flags_parse_query((const char *)data, size, &c);
  fuzz_check_change(err, &c, "query");
  if (size && memchr(data, '\0', size))
    FUZZ_CHECK(err == SRV_EINVAL, "query: a NUL byte gave %d", err);
  if (!err) {
    FUZZ_CHECK(c.n == pairs(data, size), "query: %zu changes from %zu pairs",
               c.n, pairs(data, size));
    fuzz_round_trip(&c, fuzz_hash(data, size), "query");
  }
  fuzz_end(&mark, "query");
  return 0;
}

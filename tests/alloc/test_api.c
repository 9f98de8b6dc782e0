/* The API behaves as C's malloc family says, and names what it reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include <lab/cjson.h>

#include "events.h"

static void malloc_of_zero_gives_distinct_freeable_blocks(void **state) {
  (void)state;
  void *a = lab_malloc(0), *b = lab_malloc(0);
  assert_non_null(a);
  assert_non_null(b);
  assert_ptr_not_equal(a, b);
  assert_int_equal(lab_usable_size(a), 0);
  lab_free(a);
  lab_free(b);
}

static void blocks_are_16_byte_aligned(void **state) {
  (void)state;
  for (size_t n = 1; n < 200000; n = n * 2 + 3) {
    void *p = lab_malloc(n);
    assert_int_equal((uintptr_t)p % 16, 0);
    lab_free(p);
  }
}

static void realloc_follows_c(void **state) {
  (void)state;
  uint64_t live = live_bytes();
  char *p = lab_realloc(NULL, 5); /* NULL: malloc */
  memcpy(p, "abcd", 5);
  p = lab_realloc(p, 50000); /* grows, keeps the bytes */
  assert_string_equal(p, "abcd");
  p = lab_realloc(p, 3); /* shrinks, keeps the prefix */
  assert_memory_equal(p, "abc", 3);
  assert_null(lab_realloc(p, 0)); /* 0: frees */
  assert_int_equal(live_bytes(), live);
}

static void try_realloc_failure_leaves_the_block_alone(void **state) {
  (void)state;
  char *p = lab_strdup("keep me");
  assert_null(lab_try_realloc(p, SIZE_MAX - 100));
  assert_string_equal(p, "keep me");
  lab_free(p);
}

static void strdup_copies_and_names_the_site(void **state) {
  (void)state;
  char *s = lab_strdup_named("hello", "greeting");
  assert_string_equal(s, "hello");
  lab_site_stats_t all[256];
  size_t n = lab_site_stats(all, 256);
  int found = 0;
  for (size_t i = 0; i < n && i < 256; i++)
    if (all[i].site->name && !strcmp(all[i].site->name, "greeting")) {
      found = 1;
      assert_int_equal(all[i].live_bytes, 6);
      assert_string_equal(all[i].site->file, __FILE__);
      assert_string_equal(all[i].site->func, "strdup_copies_and_names_the_site");
    }
  assert_true(found);
  lab_free(s);
}

static void names_and_messages_come_from_one_list(void **state) {
  (void)state;
  assert_string_equal(lab_fault_name(LAB_FAULT_double_free), "double_free");
  assert_string_equal(lab_fault_name(LAB_FAULT_use_after_free), "use_after_free");
  assert_string_equal(lab_fault_name((lab_fault_t)99), "unknown");
  assert_non_null(strstr(lab_fault_desc(LAB_FAULT_overflow), "guard"));
  assert_string_equal(lab_strerror(LAB_ENOMEM), "out of memory");
  assert_string_equal(lab_strerror(12345), "unknown error");
  lab_backend_t b;
  assert_int_equal(lab_backend_parse("libc", &b), LAB_OK);
  assert_int_equal(b, LAB_BACKEND_LIBC);
  assert_int_equal(lab_backend_parse("jemalloc", &b), LAB_EINVAL);
  assert_string_equal(lab_backend_name(), "lab");
}

static void init_refuses_to_switch_backend_once_running(void **state) {
  (void)state;
  lab_config_t cfg = {.backend = LAB_BACKEND_LIBC};
  assert_int_equal(lab_init(&cfg), LAB_EBUSY);
  cfg.backend = (lab_backend_t)7;
  assert_int_equal(lab_init(&cfg), LAB_EINVAL);
  assert_string_equal(lab_backend_name(), "lab");
}

static void cjson_allocates_through_the_heap(void **state) {
  (void)state;
  lab_cjson_install();
  static lab_site_t parse_site = {__FILE__, "parse", "json-tree", 1, 0};
  const lab_site_t *old = lab_hook_site(&parse_site);
  uint64_t live = live_bytes();
  cJSON *doc = cJSON_Parse("{\"a\":[1,2,3],\"b\":\"text\"}");
  lab_hook_site(old);
  assert_non_null(doc);
  assert_true(live_bytes() > live);
  lab_site_stats_t st = site_stats(&parse_site);
  assert_true(st.live_blocks >= 6);
  char *out = cJSON_PrintUnformatted(doc); /* charged to "cjson" */
  assert_string_equal(out, "{\"a\":[1,2,3],\"b\":\"text\"}");
  cJSON_free(out);
  cJSON_Delete(doc);
  assert_int_equal(live_bytes(), live);
}

int main(void) {
  lab_config_t cfg = {.backend = LAB_BACKEND_LAB};
  if (lab_init(&cfg) != LAB_OK) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(malloc_of_zero_gives_distinct_freeable_blocks),
      cmocka_unit_test(blocks_are_16_byte_aligned),
      cmocka_unit_test(realloc_follows_c),
      cmocka_unit_test(try_realloc_failure_leaves_the_block_alone),
      cmocka_unit_test(strdup_copies_and_names_the_site),
      cmocka_unit_test(names_and_messages_come_from_one_list),
      cmocka_unit_test(init_refuses_to_switch_backend_once_running),
      cmocka_unit_test(cjson_allocates_through_the_heap),
  };
  return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}

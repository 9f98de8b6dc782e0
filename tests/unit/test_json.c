/* core/buf and core/json: the text buffer every response is built in, and
 * the streaming JSON writer over it (commas, nesting, escaping, numbers),
 * down to a failed allocation: a clean failure flag and no leak. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "unit.h"

#define SITE LAB_SITE("unit.json")

/* The document's text; the caller frees it with srv_buf_free. */
static const char *text(srv_json_t *j) {
  assert_false(j->buf.failed);
  assert_non_null(j->buf.data);
  return j->buf.data;
}

static void members_are_separated_by_commas_at_every_depth(void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_obj(&j, NULL);
  srv_json_u64(&j, "a", 1);
  srv_json_arr(&j, "b");
  srv_json_i64(&j, NULL, -2);
  srv_json_str(&j, NULL, "x");
  srv_json_null(&j, NULL);
  srv_json_bool(&j, NULL, true);
  srv_json_obj(&j, NULL);
  srv_json_bool(&j, "f", false);
  srv_json_end(&j);
  srv_json_end(&j);
  srv_json_obj(&j, "c");
  srv_json_end(&j);
  srv_json_arr(&j, "d");
  srv_json_end(&j);
  srv_json_raw(&j, "e", "[1,2]");
  srv_json_end(&j);
  assert_string_equal(text(&j), "{\"a\":1,\"b\":[-2,\"x\",null,true,"
                                "{\"f\":false}],\"c\":{},\"d\":[],"
                                "\"e\":[1,2]}");
  assert_int_equal(j.depth, 0);
  srv_buf_free(&j.buf);
}

static void an_empty_container_after_a_full_one_gets_no_stray_comma(
    void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_arr(&j, NULL);
  srv_json_arr(&j, NULL);
  srv_json_u64(&j, NULL, 1);
  srv_json_end(&j);
  srv_json_arr(&j, NULL);
  srv_json_end(&j);
  srv_json_obj(&j, NULL);
  srv_json_end(&j);
  srv_json_end(&j);
  assert_string_equal(text(&j), "[[1],[],{}]");
  srv_buf_free(&j.buf);
}

static void closing_more_than_was_opened_writes_nothing(void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_obj(&j, NULL);
  srv_json_end(&j);
  srv_json_end(&j);
  srv_json_end(&j);
  assert_string_equal(text(&j), "{}");
  srv_buf_free(&j.buf);
}

static void quotes_backslashes_and_control_characters_are_escaped(
    void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_obj(&j, NULL);
  srv_json_str(&j, "k\"\n", "q\"b\\s\n\r\t\x01\x1f\x7f caf\xc3\xa9");
  srv_json_end(&j);
  assert_string_equal(text(&j), "{\"k\\\"\\n\":\"q\\\"b\\\\s\\n\\r\\t"
                                "\\u0001\\u001f\x7f caf\xc3\xa9\"}");
  /* And a JSON parser reads back exactly what was written. */
  cJSON *doc = cJSON_Parse(j.buf.data);
  assert_non_null(doc);
  assert_string_equal(cJSON_GetObjectItem(doc, "k\"\n")->valuestring,
                      "q\"b\\s\n\r\t\x01\x1f\x7f caf\xc3\xa9");
  cJSON_Delete(doc);
  srv_buf_free(&j.buf);
}

static void a_null_string_is_written_as_null(void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_obj(&j, NULL);
  srv_json_str(&j, "s", NULL);
  srv_json_end(&j);
  assert_string_equal(text(&j), "{\"s\":null}");
  srv_buf_free(&j.buf);
}

static void nan_and_infinities_are_written_as_null(void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_arr(&j, NULL);
  srv_json_f64(&j, NULL, NAN);
  srv_json_f64(&j, NULL, INFINITY);
  srv_json_f64(&j, NULL, -INFINITY);
  srv_json_end(&j);
  assert_string_equal(text(&j), "[null,null,null]");
  srv_buf_free(&j.buf);
}

static void numbers_keep_their_value_and_whole_doubles_print_as_integers(
    void **state) {
  (void)state;
  srv_json_t j;
  srv_json_init(&j, SITE);
  srv_json_arr(&j, NULL);
  srv_json_u64(&j, NULL, UINT64_MAX);
  srv_json_i64(&j, NULL, INT64_MIN);
  srv_json_f64(&j, NULL, 3.0);
  srv_json_f64(&j, NULL, -0.25);
  srv_json_f64(&j, NULL, 1e20);
  srv_json_end(&j);
  assert_string_equal(text(&j), "[18446744073709551615,-9223372036854775808,"
                                "3,-0.25,1e+20]");
  srv_buf_free(&j.buf);
}

/* ---- srv_buf ---- */

static void printf_longer_than_its_stack_buffer_is_appended_whole(
    void **state) {
  (void)state;
  char big[1000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  srv_buf_t b;
  srv_buf_init(&b, SITE);
  srv_buf_puts(&b, "<");
  srv_buf_printf(&b, "%s|%d", big, 7);
  srv_buf_puts(&b, ">");
  assert_false(b.failed);
  assert_int_equal(b.len, 1 + 999 + 2 + 1);
  assert_int_equal(strlen(b.data), b.len);
  assert_memory_equal(b.data + 990, "zzzzzzzzzz|7>", 14);
  srv_buf_free(&b);
}

/* srv_buf_take on a buffer that never held text returns an empty string,
 * as buf.h promises: its first byte once was the heap's 0xA5 fill. */
static void taking_an_empty_buffer_gives_an_empty_string(void **state) {
  (void)state;
  srv_buf_t b;
  srv_buf_init(&b, SITE);
  size_t len = 99;
  char *s = srv_buf_take(&b, &len);
  assert_non_null(s);
  assert_int_equal(len, 0);
  assert_int_equal((unsigned char)s[0], 0); /* not printed: no NUL to stop */
  assert_null(b.data);
  lab_free(s);
}

static void taken_text_belongs_to_the_caller_and_the_buffer_starts_over(
    void **state) {
  (void)state;
  srv_buf_t b;
  srv_buf_init(&b, SITE);
  srv_buf_puts(&b, "first");
  size_t len;
  char *s = srv_buf_take(&b, &len);
  assert_string_equal(s, "first");
  assert_int_equal(len, 5);
  assert_int_equal(b.len, 0);
  srv_buf_puts(&b, "second");
  assert_string_equal(b.data, "second");
  assert_string_equal(s, "first");
  lab_free(s);
  srv_buf_free(&b);
}

static void prometheus_label_values_escape_backslash_quote_and_newline(
    void **state) {
  (void)state;
  srv_buf_t b;
  srv_buf_init(&b, SITE);
  srv_buf_prom_label(&b, "a\\b\"c\nd\te");
  assert_string_equal(b.data, "a\\\\b\\\"c\\nd\te");
  srv_buf_free(&b);
}

static void the_buffer_is_charged_to_the_site_it_was_given(void **state) {
  (void)state;
  const lab_site_t *site = LAB_SITE("unit.json_charged");
  srv_buf_t b;
  srv_buf_init(&b, site);
  srv_buf_puts(&b, "x");
  assert_int_equal(unit_site_live_blocks(site), 1);
  srv_buf_free(&b);
  assert_int_equal(unit_site_live_blocks(site), 0);
}

/* ---- allocation failure ---- */

#define ROWS 12000

/* A document big enough that its buffer outgrows the small-block sizes
 * and each doubling is a mapping of its own. */
static void big_document(srv_json_t *j) {
  srv_json_init(j, SITE);
  srv_json_obj(j, NULL);
  srv_json_arr(j, "rows");
  for (int i = 0; i < ROWS; i++) {
    srv_json_obj(j, NULL);
    srv_json_u64(j, "i", (uint64_t)i);
    srv_json_str(j, "name", "row \"quoted\"\n");
    srv_json_f64(j, "share", i / 7.0);
    srv_json_end(j);
  }
  srv_json_end(j);
  srv_json_end(j);
}

static void settle(void) {
  lab_flush_quarantine();
  lab_trim();
}

static void every_failed_allocation_sets_the_flag_and_leaks_nothing(
    void **state) {
  (void)state;
  srv_json_t j;
  big_document(&j);
  size_t full = j.buf.len;
  assert_true(full > 600000);
  srv_buf_free(&j.buf);
  settle();
  uint64_t live0 = unit_live_blocks();
  int failed_runs = 0;
  for (uint64_t n = 1;; n++) {
    uint64_t injected = lab_debug_os_failures();
    lab_debug_fail_os_at(n);
    big_document(&j);
    lab_debug_fail_os_at(0);
    bool hit = lab_debug_os_failures() != injected;
    assert_int_equal(j.buf.failed, hit);
    if (hit) {
      failed_runs++;
      /* The text is cut, never overrun, and still a C string. */
      assert_true(j.buf.len < full);
      if (j.buf.data) assert_int_equal(strlen(j.buf.data), j.buf.len);
      /* Once failed, the buffer stays failed. */
      assert_int_equal(srv_buf_reserve(&j.buf, 1), SRV_ENOMEM);
    } else {
      assert_int_equal(j.buf.len, full);
    }
    srv_buf_free(&j.buf);
    settle();
    assert_int_equal(unit_live_blocks(), live0);
    if (!hit) break;
    assert_true(n < 100);
  }
  assert_true(failed_runs >= 3);
}

/* The module's invariant: a freed buffer leaves nothing on the heap. */
static void every_buffer_freed_leaves_the_heap_as_it_was(void **state) {
  (void)state;
  uint64_t live0 = unit_live_blocks();
  for (int i = 0; i < 50; i++) {
    srv_json_t j;
    big_document(&j);
    if (i % 2) srv_buf_free(&j.buf);
    else lab_free(srv_buf_take(&j.buf, NULL));
  }
  assert_int_equal(unit_live_blocks(), live0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(members_are_separated_by_commas_at_every_depth),
    cmocka_unit_test(an_empty_container_after_a_full_one_gets_no_stray_comma),
    cmocka_unit_test(closing_more_than_was_opened_writes_nothing),
    cmocka_unit_test(quotes_backslashes_and_control_characters_are_escaped),
    cmocka_unit_test(a_null_string_is_written_as_null),
    cmocka_unit_test(nan_and_infinities_are_written_as_null),
    cmocka_unit_test(
        numbers_keep_their_value_and_whole_doubles_print_as_integers),
    cmocka_unit_test(printf_longer_than_its_stack_buffer_is_appended_whole),
    cmocka_unit_test(
        taken_text_belongs_to_the_caller_and_the_buffer_starts_over),
    cmocka_unit_test(
        prometheus_label_values_escape_backslash_quote_and_newline),
    cmocka_unit_test(the_buffer_is_charged_to_the_site_it_was_given),
    cmocka_unit_test(every_failed_allocation_sets_the_flag_and_leaks_nothing),
    cmocka_unit_test(every_buffer_freed_leaves_the_heap_as_it_was),
    cmocka_unit_test(taking_an_empty_buffer_gives_an_empty_string),
};

UNIT_MAIN("json", tests)

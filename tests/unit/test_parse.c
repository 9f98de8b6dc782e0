/* core/parse: query strings split and decoded as MHD does, JSON bodies
 * taken whole or not at all, and client text made safe to quote back. */
#include <cjson/cJSON.h>
#include <lab/cjson.h>

#include "core/err.h"
#include "core/parse.h"
#include "unit.h"

/* ---- srv_parse_query ---- */

#define PAIRS_MAX 8

/* What the callback saw: every pair, copied with its lengths. */
typedef struct pairs {
  int n;
  int stop_at;   /* return stop_rc on this pair (1-based); 0: never */
  int stop_rc;
  struct {
    char key[64], value[64];
    size_t key_len, value_len;
    int has_value;
  } p[PAIRS_MAX];
} pairs_t;

static int record_pair(void *ctx, const char *key, size_t key_len,
                       const char *value, size_t value_len) {
  pairs_t *ps = ctx;
  assert_true(ps->n < PAIRS_MAX);
  assert_true(key_len < 64 && value_len < 64);
  memcpy(ps->p[ps->n].key, key, key_len + 1);
  ps->p[ps->n].key_len = key_len;
  ps->p[ps->n].has_value = value != NULL;
  if (value) memcpy(ps->p[ps->n].value, value, value_len + 1);
  ps->p[ps->n].value_len = value_len;
  ps->n++;
  return ps->n == ps->stop_at ? ps->stop_rc : 0;
}

static int parse(const char *q, pairs_t *ps) {
  memset(ps, 0, sizeof *ps);
  return srv_parse_query(q, strlen(q), record_pair, ps);
}

static void a_query_splits_on_ampersands_into_key_value_pairs(void **state) {
  (void)state;
  pairs_t ps;
  assert_int_equal(parse("a=1&bb=two&c=", &ps), SRV_OK);
  assert_int_equal(ps.n, 3);
  assert_string_equal(ps.p[0].key, "a");
  assert_string_equal(ps.p[0].value, "1");
  assert_string_equal(ps.p[1].key, "bb");
  assert_string_equal(ps.p[1].value, "two");
  assert_int_equal(ps.p[1].value_len, 3);
  assert_string_equal(ps.p[2].key, "c");
  assert_true(ps.p[2].has_value);
  assert_int_equal(ps.p[2].value_len, 0);
}

static void only_the_first_equals_sign_separates_key_from_value(void **state) {
  (void)state;
  pairs_t ps;
  assert_int_equal(parse("expr=a=b=c", &ps), SRV_OK);
  assert_int_equal(ps.n, 1);
  assert_string_equal(ps.p[0].key, "expr");
  assert_string_equal(ps.p[0].value, "a=b=c");
}

static void a_pair_without_equals_sign_has_a_null_value(void **state) {
  (void)state;
  pairs_t ps;
  assert_int_equal(parse("verbose&x=1", &ps), SRV_OK);
  assert_int_equal(ps.n, 2);
  assert_string_equal(ps.p[0].key, "verbose");
  assert_false(ps.p[0].has_value);
  assert_true(ps.p[1].has_value);
}

static void plus_decodes_as_a_space_and_percent_hex_as_its_byte(void **state) {
  (void)state;
  pairs_t ps;
  assert_int_equal(parse("hello+there=big+world&x=%41%62%2B1&%7e=%20", &ps),
                   SRV_OK);
  assert_int_equal(ps.n, 3);
  assert_string_equal(ps.p[0].key, "hello there");
  assert_string_equal(ps.p[0].value, "big world");
  /* %2B is a literal plus, not a space: '+' is replaced before %HH. */
  assert_string_equal(ps.p[1].value, "Ab+1");
  assert_int_equal(ps.p[1].value_len, 4);
  assert_string_equal(ps.p[2].key, "~");
  assert_string_equal(ps.p[2].value, " ");
}

static void an_encoded_nul_is_counted_inside_the_decoded_length(void **state) {
  (void)state;
  pairs_t ps;
  assert_int_equal(parse("k%00y=a%00b", &ps), SRV_OK);
  assert_int_equal(ps.n, 1);
  assert_int_equal(ps.p[0].key_len, 3);
  assert_memory_equal(ps.p[0].key, "k\0y", 3);
  assert_int_equal(ps.p[0].value_len, 3);
  assert_memory_equal(ps.p[0].value, "a\0b", 3);
}

static void every_ampersand_ends_a_pair_and_a_non_empty_rest_makes_one(
    void **state) {
  (void)state;
  pairs_t ps;
  assert_int_equal(parse("a=1&", &ps), SRV_OK);
  assert_int_equal(ps.n, 1);
  assert_int_equal(parse("&&", &ps), SRV_OK);
  assert_int_equal(ps.n, 2);
  assert_int_equal(ps.p[0].key_len, 0);
  assert_false(ps.p[0].has_value);
  assert_int_equal(parse("&a", &ps), SRV_OK);
  assert_int_equal(ps.n, 2);
  assert_string_equal(ps.p[1].key, "a");
  assert_int_equal(parse("", &ps), SRV_OK);
  assert_int_equal(ps.n, 0);
}

static void only_len_bytes_of_the_query_are_read(void **state) {
  (void)state;
  pairs_t ps;
  memset(&ps, 0, sizeof ps);
  assert_int_equal(srv_parse_query("a=1&b=2", 3, record_pair, &ps), SRV_OK);
  assert_int_equal(ps.n, 1);
  assert_string_equal(ps.p[0].value, "1");
}

static void a_raw_nul_byte_in_the_query_is_invalid_and_no_pair_is_seen(
    void **state) {
  (void)state;
  pairs_t ps;
  memset(&ps, 0, sizeof ps);
  assert_int_equal(srv_parse_query("a=1&b\0=2", 8, record_pair, &ps),
                   SRV_EINVAL);
  assert_int_equal(ps.n, 0);
}

static void a_nonzero_callback_result_stops_the_walk_and_is_returned(
    void **state) {
  (void)state;
  pairs_t ps;
  memset(&ps, 0, sizeof ps);
  ps.stop_at = 2;
  ps.stop_rc = 42;
  const char *q = "a=1&b=2&c=3";
  assert_int_equal(srv_parse_query(q, strlen(q), record_pair, &ps), 42);
  assert_int_equal(ps.n, 2);
  ps.n = 0;
  ps.stop_rc = SRV_ENOENT;
  assert_int_equal(srv_parse_query(q, strlen(q), record_pair, &ps), SRV_ENOENT);
}

/* ---- srv_parse_json ---- */

static cJSON *json(const char *text) {
  return srv_parse_json(text, strlen(text), NULL);
}

static void one_json_value_with_white_space_around_it_parses(void **state) {
  (void)state;
  cJSON *doc = json(" \n{\"a\": [1, 2]}\t\r\n ");
  assert_non_null(doc);
  assert_true(cJSON_IsObject(doc));
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "a")), 2);
  cJSON_Delete(doc);
  doc = json("17");
  assert_non_null(doc);
  assert_int_equal(doc->valueint, 17);
  cJSON_Delete(doc);
}

static void bytes_after_the_json_value_are_rejected(void **state) {
  (void)state;
  assert_null(json("{} {}"));
  assert_null(json("{\"a\":1}x"));
  assert_null(json("[1] ,"));
  assert_null(json("1 2"));
}

static void a_nul_byte_inside_the_text_is_rejected(void **state) {
  (void)state;
  /* text[len] is NUL as the contract asks; the NUL at [2] is inside. */
  static const char body[] = "{}\0 ";
  assert_null(srv_parse_json(body, 4, NULL));
  static const char body2[] = "[1,\0 2]";
  assert_null(srv_parse_json(body2, sizeof body2 - 1, NULL));
}

static void empty_or_malformed_text_is_not_json(void **state) {
  (void)state;
  assert_null(srv_parse_json("", 0, NULL));
  assert_null(srv_parse_json(NULL, 0, NULL));
  assert_null(json("{\"a\":"));
  assert_null(json("   "));
  assert_null(json("{'a':1}"));
}

static void the_parsed_document_is_charged_to_the_site_given(void **state) {
  (void)state;
  lab_cjson_install();
  const lab_site_t *site = LAB_SITE("unit.json_body");
  cJSON *doc = srv_parse_json("{\"k\":[\"v\",1]}", 13, site);
  assert_non_null(doc);
  assert_true(unit_site_live_blocks(site) >= 3);
  cJSON_Delete(doc);
  assert_int_equal(unit_site_live_blocks(site), 0);
}

static void a_rejected_document_leaves_no_block_behind(void **state) {
  (void)state;
  lab_cjson_install();
  uint64_t live = unit_live_blocks();
  assert_null(json("{\"a\":[1,2,3],\"b\":\"long enough text\"} trailing"));
  assert_int_equal(unit_live_blocks(), live);
}

/* ---- srv_parse_utf8 ---- */

static void valid_utf8_is_copied_unchanged(void **state) {
  (void)state;
  char out[64];
  const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9b";
  assert_int_equal(srv_parse_utf8(out, sizeof out, s, strlen(s)), strlen(s));
  assert_string_equal(out, s);
}

static void each_byte_of_an_invalid_sequence_becomes_a_question_mark(
    void **state) {
  (void)state;
  char out[64];
  struct {
    const char *in;
    size_t len;
    const char *want;
  } cases[] = {
      {"a\xff" "b", 3, "a?b"},
      {"\xe2\x82" "a", 3, "??a"},          /* a 3-byte character cut short */
      {"\xc0\xaf", 2, "??"},               /* overlong '/' */
      {"\xed\xa0\x80", 3, "???"},          /* a UTF-16 surrogate */
      {"\xf4\x90\x80\x80", 4, "????"},     /* past U+10FFFF */
      {"\x80x", 2, "?x"},                  /* a lone continuation byte */
      {"a\0b", 3, "a?b"},                  /* NUL would end the text */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = srv_parse_utf8(out, sizeof out, cases[i].in, cases[i].len);
    assert_string_equal(out, cases[i].want);
    assert_int_equal(n, strlen(cases[i].want));
  }
}

static void a_cut_to_fit_never_splits_a_character(void **state) {
  (void)state;
  char in[40], out[32];
  memset(in, 'a', 30);
  memcpy(in + 30, "\xc3\xa9", 2);
  /* 30 + 2 bytes do not fit in 32 with the NUL: the e-acute goes whole. */
  assert_int_equal(srv_parse_utf8(out, sizeof out, in, 32), 30);
  assert_int_equal(strlen(out), 30);
  assert_int_equal(out[29], 'a');
  char big[33];
  assert_int_equal(srv_parse_utf8(big, sizeof big, in, 32), 32);
  assert_memory_equal(big + 30, "\xc3\xa9", 3);
  /* A 4-byte character with room for 3. */
  char four[4];
  assert_int_equal(srv_parse_utf8(four, sizeof four, "\xf0\x9f\x90\x9b", 4), 0);
  assert_string_equal(four, "");
}

static void a_one_byte_buffer_gets_the_empty_string(void **state) {
  (void)state;
  char out[1] = {'x'};
  assert_int_equal(srv_parse_utf8(out, 1, "abc", 3), 0);
  assert_int_equal(out[0], '\0');
}

/* The module's invariant: parsing keeps no block, whatever it returns. */
static void parsing_leaves_no_block_behind(void **state) {
  (void)state;
  uint64_t live = unit_live_blocks();
  pairs_t ps;
  for (int i = 0; i < 100; i++) {
    parse("a=1&b=%41&c", &ps);
    ps.stop_at = 1;
    ps.stop_rc = 1;
    srv_parse_query("x=1&y=2", 7, record_pair, &ps);
    cJSON_Delete(json("{\"a\":1}"));
    json("{\"a\":1} 2");
  }
  assert_int_equal(unit_live_blocks(), live);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(a_query_splits_on_ampersands_into_key_value_pairs),
    cmocka_unit_test(only_the_first_equals_sign_separates_key_from_value),
    cmocka_unit_test(a_pair_without_equals_sign_has_a_null_value),
    cmocka_unit_test(plus_decodes_as_a_space_and_percent_hex_as_its_byte),
    cmocka_unit_test(an_encoded_nul_is_counted_inside_the_decoded_length),
    cmocka_unit_test(
        every_ampersand_ends_a_pair_and_a_non_empty_rest_makes_one),
    cmocka_unit_test(only_len_bytes_of_the_query_are_read),
    cmocka_unit_test(
        a_raw_nul_byte_in_the_query_is_invalid_and_no_pair_is_seen),
    cmocka_unit_test(a_nonzero_callback_result_stops_the_walk_and_is_returned),
    cmocka_unit_test(one_json_value_with_white_space_around_it_parses),
    cmocka_unit_test(bytes_after_the_json_value_are_rejected),
    cmocka_unit_test(a_nul_byte_inside_the_text_is_rejected),
    cmocka_unit_test(empty_or_malformed_text_is_not_json),
    cmocka_unit_test(the_parsed_document_is_charged_to_the_site_given),
    cmocka_unit_test(a_rejected_document_leaves_no_block_behind),
    cmocka_unit_test(valid_utf8_is_copied_unchanged),
    cmocka_unit_test(each_byte_of_an_invalid_sequence_becomes_a_question_mark),
    cmocka_unit_test(a_cut_to_fit_never_splits_a_character),
    cmocka_unit_test(a_one_byte_buffer_gets_the_empty_string),
    cmocka_unit_test(parsing_leaves_no_block_behind),
};

UNIT_MAIN("parse", tests)

/* The pprof writer: profiles of made-up stacks with made-up symbols, read
 * back by a small protobuf reader here and, with `--go GO`, by
 * `go tool pprof` itself (the ctest unit_pprof_go; skipped with code 77
 * when go is gone). This file is built with -g: one test symbolizes its
 * own stack for real. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "unit.h"

#include "core/buf.h"
#include "core/err.h"
#include "observe/pprof.h"
#include "observe/symbols.h"

/* ---- Made-up symbols. ---- */

enum {
  A_LEAF = 0x401010, A_ECHO = 0x402020, A_MAIN = 0x403030, A_SESS = 0x404040,
  A_SESSH = 0x405050, A_UNKNOWN = 0x1234,
};
#define A_CJSON ((uintptr_t)0x7f0000001234)

static const srv_frame_line_t make_node[] = {{"echo_make_node", "/src/app/echo.c", 25}};

typedef struct fake_sym {
  uintptr_t addr;
  const char *function, *file;
  int line;
  int lib; /* 0: the executable, 1: the library, -1: none */
} fake_sym_t;

static const fake_sym_t fakes[] = {
    {A_LEAF, "echo_leak_tree", "/src/app/echo.c", 40, 0},
    {A_ECHO, "echo_handler", "/src/app/echo.c", 80, 0},
    {A_MAIN, "main", "/src/proc/main.c", 10, 0},
    {A_SESS, "session_put", "/src/app/session.c", 55, 0},
    {A_SESSH, "session_handler", "/src/app/session.c", 90, 0},
    {A_CJSON, "cJSON_New_Item", "", 0, 1},
};

static int fake_calls;

static int fake_symbolize(void *ctx, uintptr_t addr, unsigned flags, srv_frame_t *out) {
  (void)ctx;
  fake_calls++;
  assert_int_equal(flags, SRV_SYMBOLS_RETURN);
  *out = (srv_frame_t){.addr = addr, .function = "0x?", .file = "", .module = "",
                       .module_path = "", .build_id = ""};
  for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
    const fake_sym_t *f = &fakes[i];
    if (f->addr != addr) continue;
    out->function = f->function;
    out->file = f->file;
    out->line = f->line;
    out->flags = SRV_FRAME_FUNCTION | SRV_FRAME_MODULE | (f->line ? SRV_FRAME_LINE : 0) |
                 (f->lib ? 0 : SRV_FRAME_MAIN);
    out->module_path = f->lib ? "/opt/fake/libfake.so.1" : "/opt/fake/fakeapp";
    out->module = out->module_path + 10;
    out->build_id = f->lib ? "" : "feedface01";
    out->map_start = f->lib ? 0x7f0000000000 : 0x400000;
    out->map_end = f->lib ? 0x7f0000100000 : 0x500000;
    out->map_offset = f->lib ? 0x1000 : 0;
    out->module_offset = addr - 1 - out->map_start + out->map_offset;
    if (addr == A_LEAF) {
      out->inlined = make_node;
      out->ninlined = 1;
    }
  }
  return SRV_OK;
}

static const uintptr_t stack_leak[] = {A_LEAF, A_ECHO, A_MAIN};
static const uintptr_t stack_session[] = {A_SESS, A_SESSH, A_MAIN};
static const uintptr_t stack_cjson[] = {A_CJSON, A_ECHO, A_MAIN};
static const uintptr_t stack_unknown[] = {A_UNKNOWN, A_MAIN};

/* inuse_space totals 4260 bytes, 4096 of them in echo_make_node. */
static srv_pprof_sample_t samples[] = {
    {stack_leak, 3, 20, 8192, 10, 4096, "echo", "echo.tree"},
    {stack_session, 3, 5, 300, 2, 100, "session", "session.cache"},
    {stack_cjson, 3, 1, 64, 1, 64, "echo", "cjson"},
    {stack_unknown, 2, 3, 30, 0, 0, NULL, NULL},
};

static srv_pprof_profile_t profile(void) {
  return (srv_pprof_profile_t){.samples = samples,
                               .nsamples = 4,
                               .time_nanos = 1700000000000000000,
                               .symbolize = fake_symbolize};
}

static const lab_site_t *test_site(void) { return LAB_SITE("pprof.test"); }

/* ---- A small protobuf reader, for what the writer wrote. ---- */

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

typedef struct field {
  unsigned num;
  uint64_t value;        /* a varint's value */
  const uint8_t *data;   /* a length-delimited field's bytes, else NULL */
  size_t len;
} field_t;

/* The next field of [*p, end); false at the end or on bad input. */
static bool next_field(const uint8_t **p, const uint8_t *end, field_t *f) {
  uint64_t key;
  if (*p >= end || !get_varint(p, end, &key)) return false;
  *f = (field_t){.num = (unsigned)(key >> 3)};
  if ((key & 7) == 0) return get_varint(p, end, &f->value);
  if ((key & 7) != 2 || !get_varint(p, end, &f->value) || f->value > (uint64_t)(end - *p))
    return false;
  f->data = *p;
  f->len = (size_t)f->value;
  *p += f->len;
  return true;
}

static size_t gunzip(const srv_buf_t *in, uint8_t *out, size_t cap) {
  z_stream z = {.next_in = (Bytef *)in->data, .avail_in = (uInt)in->len,
                .next_out = out, .avail_out = (uInt)cap};
  assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
  assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
  size_t n = cap - z.avail_out;
  inflateEnd(&z);
  return n;
}

/* ---- The writer on its own. ---- */

static void a_profile_is_gzipped_and_each_address_symbolized_once(void **state) {
  (void)state;
  srv_pprof_profile_t p = profile();
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  fake_calls = 0;
  assert_int_equal(srv_pprof_write(&p, &out), SRV_OK);
  assert_int_equal(fake_calls, 7);
  assert_true(out.len > 20);
  assert_int_equal((uint8_t)out.data[0], 0x1f);
  assert_int_equal((uint8_t)out.data[1], 0x8b);
  srv_buf_free(&out);
}

static void a_profile_decodes_to_its_samples_locations_functions_and_strings(void **state) {
  (void)state;
  srv_pprof_profile_t p = profile();
  p.duration_nanos = 10000000000;
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  assert_int_equal(srv_pprof_write(&p, &out), SRV_OK);
  static uint8_t raw[1 << 16];
  size_t n = gunzip(&out, raw, sizeof raw);
  size_t count[16] = {0};
  uint64_t scalar[16] = {0};
  const uint8_t *q = raw, *end = raw + n;
  field_t f, first_string = {0};
  bool main_first = false;
  while (next_field(&q, end, &f)) {
    assert_true(f.num < 16);
    if (f.num == 6 && !count[6]) first_string = f;
    if (f.num == 3 && !count[3]) {
      /* the first Mapping: id 1, the executable at 0x400000 */
      const uint8_t *m = f.data;
      field_t g;
      while (next_field(&m, f.data + f.len, &g))
        if (g.num == 2) main_first = g.value == 0x400000;
    }
    count[f.num]++;
    if (!f.data) scalar[f.num] = f.value;
  }
  assert_ptr_equal(q, end);
  assert_int_equal(count[1], 4);  /* sample types */
  assert_int_equal(count[2], 4);  /* samples */
  assert_int_equal(count[3], 2);  /* mappings */
  assert_int_equal(count[4], 7);  /* locations: one per address */
  assert_int_equal(count[5], 7);  /* functions: one per name and file */
  assert_true(main_first);
  assert_non_null(first_string.data);
  assert_int_equal(first_string.len, 0);
  assert_int_equal(scalar[9], 1700000000000000000);
  assert_int_equal(scalar[10], 10000000000);
  assert_int_equal(scalar[12], 1);
  srv_buf_free(&out);
}

static void the_text_form_has_gos_header_a_line_per_sample_and_the_modules(void **state) {
  (void)state;
  srv_pprof_profile_t p = profile();
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  fake_calls = 0;
  assert_int_equal(srv_pprof_write_text(&p, &out), SRV_OK);
  assert_int_equal(fake_calls, 7);
  const char *t = out.data;
  const char *header = "heap profile: 13: 4260 [29: 8586] @ heap/2\n";
  assert_memory_equal(t, header, strlen(header));
  assert_non_null(strstr(t, "\n10: 4096 [20: 8192] @ 0x401010 0x402020 0x403030\n"
                            "# labels: route=echo site=echo.tree\n"
                            "#\t0x40100f\techo_make_node\t/src/app/echo.c:25\n"
                            "#\t0x40100f\techo_leak_tree+0x0\t/src/app/echo.c:40\n"));
  assert_non_null(strstr(t, "\n0: 0 [3: 30] @ 0x1234 0x403030\n#\t0x1233\n"));
  assert_non_null(strstr(t, "#\t0x7f0000001233\tcJSON_New_Item+0x0\t[libfake.so.1]\n"));
  assert_non_null(strstr(t, "\nMAPPED_LIBRARIES:\n"
                            "400000-500000 r-xp /opt/fake/fakeapp (@0) feedface01\n"
                            "7f0000000000-7f0000100000 r-xp /opt/fake/libfake.so.1 (@1000)\n"));
  srv_buf_free(&out);
}

static void writing_leaves_only_the_output_on_the_heap(void **state) {
  (void)state;
  srv_pprof_profile_t p = profile();
  const lab_site_t *site = test_site();
  for (int text = 0; text < 2; text++) {
    srv_buf_t out;
    srv_buf_init(&out, site);
    assert_int_equal(text ? srv_pprof_write_text(&p, &out) : srv_pprof_write(&p, &out), SRV_OK);
    assert_int_equal(unit_site_live_blocks(site), 1);
    srv_buf_free(&out);
    assert_int_equal(unit_site_live_blocks(site), 0);
  }
}

static void an_empty_profile_or_stack_is_still_a_profile(void **state) {
  (void)state;
  srv_pprof_profile_t p = profile();
  p.nsamples = 0;
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  assert_int_equal(srv_pprof_write(&p, &out), SRV_OK);
  assert_true(out.len > 20);
  srv_buf_free(&out);
  assert_int_equal(srv_pprof_write_text(&p, &out), SRV_OK);
  assert_string_equal(out.data, "heap profile: 0: 0 [0: 0] @ heap/2\nMAPPED_LIBRARIES:\n");
  srv_buf_free(&out);
  /* A sample without a stack (the capture failed) has no location. */
  srv_pprof_sample_t bare = {NULL, 0, 1, 8, 1, 8, "", ""};
  p.samples = &bare;
  p.nsamples = 1;
  assert_int_equal(srv_pprof_write(&p, &out), SRV_OK);
  srv_buf_free(&out);
  assert_int_equal(srv_pprof_write_text(&p, &out), SRV_OK);
  assert_non_null(strstr(out.data, "\n1: 8 [1: 8] @\n\n"));
  srv_buf_free(&out);
}

static void a_profile_without_a_symbolizer_is_refused(void **state) {
  (void)state;
  srv_pprof_profile_t p = profile();
  p.symbolize = NULL;
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  assert_int_equal(srv_pprof_write(&p, &out), SRV_EINVAL);
  assert_int_equal(srv_pprof_write_text(&p, &out), SRV_EINVAL);
  assert_int_equal(out.len, 0);
}

UNIT_NOIPA uintptr_t pprof_probe_return(void) {
  return (uintptr_t)__builtin_return_address(0);
}

static void a_stack_of_this_process_is_named_through_srv_symbols(void **state) {
  (void)state;
  srv_symbols_t *sym;
  assert_int_equal(srv_symbols_open(0, &sym), SRV_OK);
  uintptr_t stack[] = {pprof_probe_return(), (uintptr_t)__builtin_return_address(0)};
  srv_pprof_sample_t s = {stack, 2, 1, 32, 1, 32, "test", "pprof.test"};
  srv_pprof_profile_t p = {.samples = &s, .nsamples = 1, .symbolize = srv_pprof_symbols,
                           .symbolize_ctx = sym};
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  assert_int_equal(srv_pprof_write_text(&p, &out), SRV_OK);
  assert_non_null(strstr(out.data, "\ta_stack_of_this_process_is_named_through_srv_symbols+0x"));
  assert_non_null(strstr(out.data, "test_pprof.c:"));
  /* The executable's text segment, which starts past the file's headers. */
  assert_non_null(strstr(out.data, "/unit_pprof (@"));
  assert_null(strstr(out.data, "/unit_pprof (@0)"));
  srv_buf_free(&out);
  assert_int_equal(srv_pprof_write(&p, &out), SRV_OK);
  srv_buf_free(&out);
  srv_symbols_close(sym);
}

/* ---- Read by go tool pprof. ---- */

static const char *go;    /* the go command */
static char dir[64];      /* HOME, GOCACHE and the profiles */

static void write_file(const char *name, const srv_buf_t *b) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
  fclose(f);
}

static int go_setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(dir, sizeof dir, "%s/leaklab-pprof-XXXXXX", tmp);
  if (!mkdtemp(dir)) return -1;
  srv_pprof_profile_t p = profile();
  srv_buf_t out;
  srv_buf_init(&out, test_site());
  if (srv_pprof_write(&p, &out)) return -1;
  write_file("base.pb.gz", &out);
  srv_buf_free(&out);
  /* Ten seconds later echo.tree holds three times as much. */
  samples[0].inuse_objects *= 3;
  samples[0].inuse_space *= 3;
  p.duration_nanos = 10000000000;
  p.time_nanos += p.duration_nanos;
  if (srv_pprof_write(&p, &out)) return -1;
  write_file("later.pb.gz", &out);
  srv_buf_free(&out);
  samples[0].inuse_objects /= 3;
  samples[0].inuse_space /= 3;
  p = profile();
  if (srv_pprof_write_text(&p, &out)) return -1;
  write_file("heap.txt", &out);
  srv_buf_free(&out);
  return 0;
}

static int go_teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* The sample types as `pprof -raw` lists them. */
static const char *const sample_types =
    "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes";

/* Run `go tool pprof ARGS` (files named relative to dir); its output,
 * stderr included, in a static buffer. */
static const char *pprof(const char *args) {
  static char text[1 << 16];
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && HOME='%s' GOCACHE='%s/cache' GOPATH='%s/gopath' GOFLAGS= "
           "GOTOOLCHAIN=local GOPROXY=off PPROF_TMPDIR='%s' '%s' tool pprof %s 2>&1",
           dir, dir, dir, dir, dir, go, args);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  int rc = pclose(f);
  if (rc != 0) print_message("pprof %s:\n%s", args, text);
  assert_int_equal(rc, 0);
  return text;
}

/* The row of `-top` output that names fn, or NULL. */
static const char *top_row(const char *text, const char *fn) {
  const char *row = strstr(text, fn);
  while (row && row > text && row[-1] != '\n') row--;
  return row;
}

static void pprof_reads_the_profile_its_top_function_and_its_total(void **state) {
  (void)state;
  const char *t = pprof("-top -sample_index=inuse_space -unit=B base.pb.gz");
  assert_non_null(strstr(t, "Type: inuse_space"));
  assert_non_null(strstr(t, "of 4260B total"));
  /* The first row after the header is the largest: the inlined function. */
  const char *first = strstr(t, "cum%\n");
  assert_non_null(first);
  first += 5;
  assert_ptr_equal(top_row(t, "echo_make_node"), first);
  assert_true(strncmp(first, "     4096B", 10) == 0);
  t = pprof("-top -sample_index=alloc_objects base.pb.gz");
  assert_non_null(strstr(t, "of 29 total"));
}

static void pprof_raw_lists_every_sample_with_its_values(void **state) {
  (void)state;
  const char *t = pprof("-raw base.pb.gz");
  assert_non_null(strstr(t, sample_types));
  assert_non_null(strstr(t, "20       8192         10       4096"));
  assert_non_null(strstr(t, "echo_make_node /src/app/echo.c:25"));
  assert_non_null(strstr(t, "cJSON_New_Item"));
  assert_non_null(strstr(t, "route:[echo]"));
}

static void pprof_tags_list_the_route_and_site_labels(void **state) {
  (void)state;
  const char *t = pprof("-tags -sample_index=inuse_space -unit=B base.pb.gz");
  assert_non_null(strstr(t, " route: Total 4260.0B\n"));
  assert_non_null(strstr(t, " 4160.0B (97.65%): echo\n"));
  assert_non_null(strstr(t, " 100.0B ( 2.35%): session\n"));
  assert_non_null(strstr(t, " site: Total 4260.0B\n"));
  assert_non_null(strstr(t, " 4096.0B (96.15%): echo.tree\n"));
  assert_non_null(strstr(t, "session.cache"));
}

static void pprof_traces_show_the_inlined_frame_in_its_caller(void **state) {
  (void)state;
  const char *t = pprof("-traces -sample_index=inuse_space base.pb.gz");
  assert_non_null(strstr(t, "echo_make_node (inline)"));
  assert_non_null(strstr(t, "echo_leak_tree"));
}

static void pprof_shows_the_growth_between_two_profiles(void **state) {
  (void)state;
  const char *t = pprof("-top -sample_index=inuse_space -unit=B -diff_base=base.pb.gz later.pb.gz");
  assert_non_null(strstr(t, "Duration: 10s"));
  /* Percentages are of the base's total. */
  assert_non_null(strstr(t, "Showing nodes accounting for 8192B, 192.30% of 4260B total"));
  const char *row = top_row(t, "echo_make_node");
  assert_non_null(row);
  assert_true(strncmp(row, "     8192B", 10) == 0);
  assert_null(top_row(t, "session_put"));
}

static void pprof_reads_the_debug_1_text_form(void **state) {
  (void)state;
  const char *t = pprof("-top -symbolize=none -sample_index=inuse_space -unit=B heap.txt");
  assert_non_null(strstr(t, "of 4260B total"));
  t = pprof("-raw -symbolize=none heap.txt");
  assert_non_null(strstr(t, sample_types));
  assert_non_null(strstr(t, "/opt/fake/fakeapp"));
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_profile_is_gzipped_and_each_address_symbolized_once),
      cmocka_unit_test(a_profile_decodes_to_its_samples_locations_functions_and_strings),
      cmocka_unit_test(the_text_form_has_gos_header_a_line_per_sample_and_the_modules),
      cmocka_unit_test(writing_leaves_only_the_output_on_the_heap),
      cmocka_unit_test(an_empty_profile_or_stack_is_still_a_profile),
      cmocka_unit_test(a_profile_without_a_symbolizer_is_refused),
      cmocka_unit_test(a_stack_of_this_process_is_named_through_srv_symbols),
  };
  const struct CMUnitTest go_tests[] = {
      cmocka_unit_test(pprof_reads_the_profile_its_top_function_and_its_total),
      cmocka_unit_test(pprof_raw_lists_every_sample_with_its_values),
      cmocka_unit_test(pprof_tags_list_the_route_and_site_labels),
      cmocka_unit_test(pprof_traces_show_the_inlined_frame_in_its_caller),
      cmocka_unit_test(pprof_shows_the_growth_between_two_profiles),
      cmocka_unit_test(pprof_reads_the_debug_1_text_form),
  };
  if (argc == 3 && !strcmp(argv[1], "--go")) {
    go = argv[2];
    if (access(go, X_OK) != 0) {
      fprintf(stderr, "unit_pprof: no go at %s: skipped\n", go);
      return 77;
    }
    return cmocka_run_group_tests_name("pprof_go", go_tests, go_setup, go_teardown);
  }
  return cmocka_run_group_tests_name("pprof", tests, NULL, NULL);
}

/* The symbolizer: addresses of this test, of libc, of cJSON and of nothing
 * at all turned into frames, return addresses to the line of their call,
 * a library loaded after the symbolizer opened, another process. This
 * file is built with -g whatever the preset, so its own lines are known. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "unit.h"

#include "core/err.h"
#include "observe/symbols.h"

/* Functions the tests look up; noipa keeps them whole and named. */
enum { PROBE_TARGET_LINE = __LINE__ + 1 };
UNIT_NOIPA int symbols_probe_target(int x) { return x * 3 + 1; }

UNIT_NOIPA uintptr_t symbols_probe_return(void) {
  return (uintptr_t)__builtin_return_address(0);
}

enum { INLINED_CALL_LINE = __LINE__ + 2 };
static inline __attribute__((always_inline)) uintptr_t symbols_inlined_caller(void) {
  return symbols_probe_return();
}

static bool ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), m = strlen(tail);
  return n >= m && !strcmp(s + n - m, tail);
}

/* libc's own qsort: under ASan the program's qsort is the interceptor. */
static uintptr_t libc_qsort(void) {
  void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
  assert_non_null(libc);
  void *fn = dlsym(libc, "qsort");
  dlclose(libc);
  assert_non_null(fn);
  return (uintptr_t)fn;
}

static srv_symbols_t *open_self(void) {
  srv_symbols_t *s = NULL;
  assert_int_equal(srv_symbols_open(0, &s), SRV_OK);
  assert_non_null(s);
  return s;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void a_function_of_the_test_resolves_to_its_name_and_file(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  srv_frame_t f;
  assert_int_equal(srv_symbols_lookup(s, (uintptr_t)&symbols_probe_target, 0, &f), SRV_OK);
  assert_string_equal(f.function, "symbols_probe_target");
  assert_true(ends_with(f.file, "tests/unit/test_symbols.c"));
  assert_int_equal(f.line, PROBE_TARGET_LINE);
  assert_string_equal(f.module, "unit_symbols");
  assert_true(f.flags & SRV_FRAME_FUNCTION);
  assert_true(f.flags & SRV_FRAME_LINE);
  assert_true(f.flags & SRV_FRAME_MODULE);
  assert_true(f.flags & SRV_FRAME_MAIN);
  assert_int_equal(f.function_offset, 0);
  assert_true(f.map_start <= f.addr && f.addr < f.map_end);
  assert_true(f.map_offset > 0); /* the text segment follows the headers' */
  assert_true(strlen(f.build_id) >= 16);
  srv_symbols_close(s);
}

static void qsort_resolves_to_libc_and_its_name(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  srv_frame_t f;
  assert_int_equal(srv_symbols_lookup(s, libc_qsort(), 0, &f), SRV_OK);
  assert_string_equal(f.module, "libc.so.6");
  assert_string_equal(f.function, "qsort");
  assert_true(f.flags & SRV_FRAME_FUNCTION);
  assert_false(f.flags & SRV_FRAME_MAIN);
  assert_true(ends_with(f.module_path, "/libc.so.6"));
  srv_symbols_close(s);
}

/* Debian ships cJSON without debug info: its name comes from .dynsym. */
static void cjson_parse_resolves_by_its_dynamic_symbol(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  srv_frame_t f;
  assert_int_equal(srv_symbols_lookup(s, (uintptr_t)&cJSON_Parse, 0, &f), SRV_OK);
  /* The file mapped, libcjson.so.1.7.15 on Debian 12. */
  assert_memory_equal(f.module, "libcjson.so.1", 13);
  assert_string_equal(f.function, "cJSON_Parse");
  assert_true(f.map_start <= f.addr && f.addr < f.map_end);
  assert_true(f.module_offset > 0 && f.module_offset - f.map_offset < f.map_end - f.map_start);
  srv_symbols_close(s);
}

static void a_return_address_resolves_to_the_line_of_its_call(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  uintptr_t ra = symbols_probe_return(); const int call_line = __LINE__;
  srv_frame_t f;
  assert_int_equal(srv_symbols_lookup(s, ra, SRV_SYMBOLS_RETURN, &f), SRV_OK);
  assert_int_equal(f.addr, ra);
  assert_string_equal(f.function, "a_return_address_resolves_to_the_line_of_its_call");
  assert_true(ends_with(f.file, "test_symbols.c"));
  assert_int_equal(f.line, call_line);
  assert_true(f.function_offset > 0);
  srv_symbols_close(s);
}

static void a_return_address_in_an_inlined_function_lists_it_inside_its_caller(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  uintptr_t ra = symbols_inlined_caller(); const int call_line = __LINE__;
  srv_frame_t f;
  assert_int_equal(srv_symbols_lookup(s, ra, SRV_SYMBOLS_RETURN, &f), SRV_OK);
  assert_string_equal(f.function,
                      "a_return_address_in_an_inlined_function_lists_it_inside_its_caller");
  assert_int_equal(f.line, call_line);
  assert_int_equal(f.ninlined, 1);
  assert_string_equal(f.inlined[0].function, "symbols_inlined_caller");
  assert_true(ends_with(f.inlined[0].file, "test_symbols.c"));
  assert_int_equal(f.inlined[0].line, INLINED_CALL_LINE);
  srv_symbols_close(s);
}

static void an_address_in_no_module_gives_an_unknown_frame(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  /* A mapping too large for the holes between a library's segments,
   * which count as the library's. */
  const size_t size = 16u << 20;
  char *anon = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  assert_true(anon != MAP_FAILED);
  const uintptr_t addrs[] = {0, 0x10, (uintptr_t)anon + size / 2, UINTPTR_MAX};
  for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
    srv_frame_t f;
    assert_int_equal(srv_symbols_lookup(s, addrs[i], SRV_SYMBOLS_RETURN, &f), SRV_OK);
    char hex[32];
    snprintf(hex, sizeof hex, "0x%lx", (unsigned long)addrs[i]);
    assert_string_equal(f.function, hex);
    assert_int_equal(f.flags, 0);
    assert_string_equal(f.module, "");
    assert_string_equal(f.file, "");
    assert_int_equal(f.line, 0);
  }
  /* One re-read of the maps serves the whole burst of misses. */
  srv_symbols_stats_t st;
  srv_symbols_stats(s, &st);
  assert_int_equal(st.refreshes, 1);
  munmap(anon, size);
  srv_symbols_close(s);
}

static void a_library_loaded_after_open_is_found_on_the_next_miss(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  void *h = dlopen("libthread_db.so.1", RTLD_LAZY | RTLD_LOCAL);
  assert_non_null(h);
  void *fn = dlsym(h, "td_init");
  assert_non_null(fn);
  srv_frame_t f;
  assert_int_equal(srv_symbols_lookup(s, (uintptr_t)fn, 0, &f), SRV_OK);
  assert_string_equal(f.module, "libthread_db.so.1");
  assert_string_equal(f.function, "td_init");
  srv_symbols_stats_t st;
  srv_symbols_stats(s, &st);
  assert_int_equal(st.refreshes, 1);
  srv_symbols_close(s);
  dlclose(h);
}

/* The cost of a lookup that opens a module, of one in a module already
 * open, and of a cached one, printed for the record; only the cache's
 * bookkeeping is asserted. */
static void a_second_lookup_of_an_address_is_answered_from_the_cache(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  const uintptr_t addrs[] = {(uintptr_t)&symbols_probe_target, libc_qsort(),
                             (uintptr_t)&cJSON_Parse, (uintptr_t)&srv_symbols_lookup};
  const size_t n = sizeof addrs / sizeof addrs[0];
  srv_frame_t first[4], again;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) srv_symbols_lookup(s, addrs[i], SRV_SYMBOLS_RETURN, &first[i]);
  uint64_t t1 = now_ns();
  for (size_t i = 0; i < n; i++) srv_symbols_lookup(s, addrs[i] + 1, SRV_SYMBOLS_RETURN, &again);
  uint64_t t2 = now_ns();
  const int rounds = 1000;
  for (int r = 0; r < rounds; r++)
    for (size_t i = 0; i < n; i++) srv_symbols_lookup(s, addrs[i], SRV_SYMBOLS_RETURN, &again);
  uint64_t t3 = now_ns();
  for (size_t i = 0; i < n; i++) {
    srv_symbols_lookup(s, addrs[i], SRV_SYMBOLS_RETURN, &again);
    assert_ptr_equal(again.function, first[i].function);
    assert_ptr_equal(again.file, first[i].file);
  }
  srv_symbols_stats_t st;
  srv_symbols_stats(s, &st);
  assert_int_equal(st.lookups, n * (rounds + 3));
  assert_int_equal(st.hits, n * (rounds + 1));
  assert_int_equal(st.entries, 2 * n);
  assert_true(st.cache_bytes > 0);
  print_message("symbols: per address, %.0f us opening its module, %.0f us in an "
                "open module, %.0f ns cached; cache %lu bytes\n",
                (double)(t1 - t0) / 1e3 / (double)n, (double)(t2 - t1) / 1e3 / (double)n,
                (double)(t3 - t2) / (double)(rounds * n), (unsigned long)st.cache_bytes);
  srv_symbols_close(s);
}

typedef struct lookups {
  srv_symbols_t *s;
  const char *names[3];
} lookups_t;

static void *look_up_many(void *arg) {
  lookups_t *l = arg;
  const uintptr_t addrs[] = {(uintptr_t)&symbols_probe_target, libc_qsort(),
                             (uintptr_t)&cJSON_Parse};
  for (int r = 0; r < 200; r++)
    for (int i = 0; i < 3; i++) {
      srv_frame_t f;
      srv_symbols_lookup(l->s, addrs[i] + (uintptr_t)(r % 4), 0, &f);
      if (r == 0) l->names[i] = f.function;
    }
  return NULL;
}

static void threads_looking_up_at_once_get_the_same_frames(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  pthread_t t[4];
  lookups_t l[4];
  for (int i = 0; i < 4; i++) {
    l[i] = (lookups_t){.s = s};
    assert_int_equal(pthread_create(&t[i], NULL, look_up_many, &l[i]), 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) {
    assert_string_equal(l[i].names[0], "symbols_probe_target");
    assert_string_equal(l[i].names[1], "qsort");
    assert_string_equal(l[i].names[2], "cJSON_Parse");
  }
  srv_symbols_stats_t st;
  srv_symbols_stats(s, &st);
  assert_int_equal(st.entries, 12);
  srv_symbols_close(s);
}

static void another_process_is_symbolized_by_its_pid(void **state) {
  (void)state;
  /* The child says it runs, then waits for its parent's end of `hold` to
   * close, which it does when the test ends, however it ends. */
  int ready[2], hold[2];
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(hold), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(ready[0]);
    close(hold[1]);
    char c;
    if (write(ready[1], "x", 1) != 1) _exit(1);
    while (read(hold[0], &c, 1) > 0) {}
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  char c;
  assert_int_equal(read(ready[0], &c, 1), 1);
  close(ready[0]);
  srv_symbols_t *s = NULL;
  assert_int_equal(srv_symbols_open(pid, &s), SRV_OK);
  srv_frame_t f;
  srv_symbols_lookup(s, libc_qsort(), 0, &f);
  assert_string_equal(f.module, "libc.so.6");
  assert_string_equal(f.function, "qsort");
  srv_symbols_lookup(s, (uintptr_t)&symbols_probe_target, 0, &f);
  assert_string_equal(f.function, "symbols_probe_target");
  assert_string_equal(f.module, "unit_symbols");
  srv_symbols_close(s);
  close(hold[1]);
  waitpid(pid, NULL, 0);
}

/* A symbolizer of this process opened before a fork serves the child, and
 * finds what the child alone loads. */
static void a_symbolizer_opened_before_a_fork_reads_the_childs_maps(void **state) {
  (void)state;
  srv_symbols_t *s = open_self();
  srv_frame_t f;
  srv_symbols_lookup(s, (uintptr_t)&cJSON_Parse, 0, &f);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    void *h = dlopen("libBrokenLocale.so.1", RTLD_LAZY | RTLD_LOCAL);
    void *fn = h ? dlsym(h, "__ctype_get_mb_cur_max") : NULL;
    if (!fn || srv_symbols_lookup(s, (uintptr_t)fn, 0, &f)) _exit(2);
    _exit(strcmp(f.module, "libBrokenLocale.so.1") ? 3 : 0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  srv_symbols_close(s);
}

static void a_process_that_is_gone_cannot_be_opened(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(0);
  waitpid(pid, NULL, 0);
  srv_symbols_t *s = (srv_symbols_t *)1;
  assert_int_equal(srv_symbols_open(pid, &s), SRV_ENOENT);
  assert_null(s);
  srv_symbols_close(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_function_of_the_test_resolves_to_its_name_and_file),
      cmocka_unit_test(qsort_resolves_to_libc_and_its_name),
      cmocka_unit_test(cjson_parse_resolves_by_its_dynamic_symbol),
      cmocka_unit_test(a_return_address_resolves_to_the_line_of_its_call),
      cmocka_unit_test(a_return_address_in_an_inlined_function_lists_it_inside_its_caller),
      cmocka_unit_test(an_address_in_no_module_gives_an_unknown_frame),
      cmocka_unit_test(a_library_loaded_after_open_is_found_on_the_next_miss),
      cmocka_unit_test(a_second_lookup_of_an_address_is_answered_from_the_cache),
      cmocka_unit_test(threads_looking_up_at_once_get_the_same_frames),
      cmocka_unit_test(another_process_is_symbolized_by_its_pid),
      cmocka_unit_test(a_symbolizer_opened_before_a_fork_reads_the_childs_maps),
      cmocka_unit_test(a_process_that_is_gone_cannot_be_opened),
  };
  return cmocka_run_group_tests_name("symbols", tests, NULL, NULL);
}

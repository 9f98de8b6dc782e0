/* http/router: the route table the observer and the app fill at set-up,
 * and the lookups the HTTP layer makes with it on every request. */
#include <stdbool.h>
#include <stdio.h>

#include "core/err.h"
#include "http/router.h"
#include "unit.h"

static void answer(struct srv_req *rq) { (void)rq; }
static void answer2(struct srv_req *rq) { (void)rq; }

static bool owns_files(const char *path) {
  return !strncmp(path, "/static/", 8) || !strcmp(path, "/favicon.ico");
}
static bool owns_everything(const char *path) { (void)path; return true; }

static int reset(void **state) {
  (void)state;
  srv_router_reset();
  return 0;
}

static int add(const char *id, const char *path, unsigned methods) {
  srv_route_def_t d = {id, path, methods, answer, 0, NULL};
  return srv_router_add(&d);
}

static void routes_get_indexes_from_one_and_match_their_exact_path(
    void **state) {
  (void)state;
  assert_int_equal(add("echo", "/echo", SRV_M_POST), 1);
  assert_int_equal(add("hello", "/hello", SRV_M_GET), 2);
  assert_int_equal(srv_router_count(), 3);
  assert_int_equal(srv_route_match("/hello"), 2);
  assert_int_equal(srv_route_match("/echo"), 1);
  assert_string_equal(srv_route_id(1), "echo");
  assert_string_equal(srv_route_path(2), "/hello");
  assert_ptr_equal(srv_route_handler(1), answer);
}

static void an_unknown_path_matches_other(void **state) {
  (void)state;
  add("echo", "/echo", SRV_M_POST);
  assert_int_equal(srv_route_match("/echo/"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_match("/ech"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_match("/ECHO"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_match(""), SRV_ROUTE_OTHER);
  assert_string_equal(srv_route_id(SRV_ROUTE_OTHER), "other");
  assert_string_equal(srv_route_path(SRV_ROUTE_OTHER), "other");
  assert_null(srv_route_handler(SRV_ROUTE_OTHER));
  /* An index that was never handed out reads as "other" too. */
  assert_string_equal(srv_route_id(7), "other");
  assert_string_equal(srv_route_id(-1), "other");
}

static void head_is_allowed_wherever_get_is(void **state) {
  (void)state;
  int get = add("page", "/", SRV_M_GET);
  int post = add("echo", "/echo", SRV_M_POST);
  int both = add("flags", "/api/flags", SRV_M_GET | SRV_M_PATCH | SRV_M_POST);
  assert_int_equal(srv_route_methods(get), SRV_M_GET | SRV_M_HEAD);
  assert_int_equal(srv_route_methods(post), SRV_M_POST);
  assert_int_equal(srv_route_methods(both),
                   SRV_M_GET | SRV_M_HEAD | SRV_M_PATCH | SRV_M_POST);
  assert_int_equal(srv_route_methods(SRV_ROUTE_OTHER), 0);
}

static void method_names_map_to_their_bits_and_anything_else_is_other(
    void **state) {
  (void)state;
  assert_int_equal(srv_route_method("GET"), SRV_M_GET);
  assert_int_equal(srv_route_method("HEAD"), SRV_M_HEAD);
  assert_int_equal(srv_route_method("POST"), SRV_M_POST);
  assert_int_equal(srv_route_method("PATCH"), SRV_M_PATCH);
  assert_int_equal(srv_route_method("PUT"), SRV_M_PUT);
  assert_int_equal(srv_route_method("DELETE"), SRV_M_DELETE);
  assert_int_equal(srv_route_method("get"), SRV_M_OTHER); /* case matters */
  assert_int_equal(srv_route_method("OPTIONS"), SRV_M_OTHER);
  assert_int_equal(srv_route_method(""), SRV_M_OTHER);
}

static void the_allow_header_lists_the_methods_in_a_fixed_order(void **state) {
  (void)state;
  int r = add("flags", "/api/flags", SRV_M_PATCH | SRV_M_POST | SRV_M_GET);
  int d = add("blob", "/blob", SRV_M_DELETE | SRV_M_PUT);
  char buf[64];
  assert_string_equal(srv_route_allow(r, buf, sizeof buf),
                      "GET, HEAD, POST, PATCH");
  assert_string_equal(srv_route_allow(d, buf, sizeof buf), "PUT, DELETE");
  assert_string_equal(srv_route_allow(SRV_ROUTE_OTHER, buf, sizeof buf), "");
}

static void a_small_allow_buffer_is_cut_and_terminated(void **state) {
  (void)state;
  int r = add("flags", "/api/flags", SRV_M_PATCH | SRV_M_POST | SRV_M_GET);
  char buf[12];
  memset(buf, 'x', sizeof buf);
  srv_route_allow(r, buf, 8);
  assert_string_equal(buf, "GET, HE");
  assert_int_equal(buf[8], 'x'); /* nothing past cap */
}

static void a_taken_id_or_path_is_refused(void **state) {
  (void)state;
  assert_int_equal(add("echo", "/echo", SRV_M_POST), 1);
  assert_int_equal(add("echo", "/echo2", SRV_M_POST), SRV_EINVAL);
  assert_int_equal(add("echo2", "/echo", SRV_M_POST), SRV_EINVAL);
  assert_int_equal(srv_router_count(), 2);
  /* The first registration is untouched. */
  assert_string_equal(srv_route_path(1), "/echo");
}

static void a_route_without_id_path_or_handler_is_refused(void **state) {
  (void)state;
  srv_route_def_t d = {"x", "/x", SRV_M_GET, NULL, 0, NULL};
  assert_int_equal(srv_router_add(&d), SRV_EINVAL);
  d = (srv_route_def_t){NULL, "/x", SRV_M_GET, answer, 0, NULL};
  assert_int_equal(srv_router_add(&d), SRV_EINVAL);
  d = (srv_route_def_t){"", "/x", SRV_M_GET, answer, 0, NULL};
  assert_int_equal(srv_router_add(&d), SRV_EINVAL);
  d = (srv_route_def_t){"x", NULL, SRV_M_GET, answer, 0, NULL};
  assert_int_equal(srv_router_add(&d), SRV_EINVAL);
  assert_int_equal(srv_router_add(NULL), SRV_EINVAL);
  assert_int_equal(srv_router_count(), 1);
}

static void a_full_table_refuses_one_more_route(void **state) {
  (void)state;
  static char ids[SRV_ROUTES_MAX + 1][8], paths[SRV_ROUTES_MAX + 1][8];
  for (int i = 0; i <= SRV_ROUTES_MAX; i++) {
    snprintf(ids[i], sizeof ids[i], "r%d", i);
    snprintf(paths[i], sizeof paths[i], "/r%d", i);
  }
  for (int i = 0; i < SRV_ROUTES_MAX; i++)
    assert_int_equal(add(ids[i], paths[i], SRV_M_GET), i + 1);
  assert_int_equal(srv_router_count(), SRV_ROUTE_SLOTS);
  assert_int_equal(add(ids[SRV_ROUTES_MAX], paths[SRV_ROUTES_MAX], SRV_M_GET),
                   SRV_E2BIG);
  assert_int_equal(srv_route_match(paths[SRV_ROUTES_MAX - 1]), SRV_ROUTES_MAX);
  assert_int_equal(srv_route_match(paths[SRV_ROUTES_MAX]), SRV_ROUTE_OTHER);
}

static void a_path_no_route_has_goes_to_the_first_route_that_owns_it(
    void **state) {
  (void)state;
  srv_route_def_t page = {"page", "/", SRV_M_GET, answer, 0, owns_files};
  srv_route_def_t rest = {"rest", "/rest", SRV_M_GET, answer2, 0,
                          owns_everything};
  assert_int_equal(srv_router_add(&page), 1);
  assert_int_equal(srv_router_add(&rest), 2);
  assert_int_equal(add("echo", "/echo", SRV_M_POST), 3);
  assert_int_equal(srv_route_match("/static/app.js"), 1);
  assert_int_equal(srv_route_match("/favicon.ico"), 1);
  assert_int_equal(srv_route_match("/nowhere"), 2);
  /* A route's own path wins over an owner registered before it. */
  assert_int_equal(srv_route_match("/echo"), 3);
}

static void route_options_are_kept_per_route(void **state) {
  (void)state;
  srv_route_def_t app = {"echo", "/echo", SRV_M_POST, answer,
                         SRV_ROUTE_SHEDDABLE, NULL};
  assert_int_equal(srv_router_add(&app), 1);
  assert_int_equal(add("healthz", "/healthz", SRV_M_GET), 2);
  assert_true(srv_route_has(1, SRV_ROUTE_SHEDDABLE));
  assert_false(srv_route_has(2, SRV_ROUTE_SHEDDABLE));
  assert_false(srv_route_has(SRV_ROUTE_OTHER, SRV_ROUTE_SHEDDABLE));
}

static void a_site_name_belongs_to_the_route_named_before_its_first_dot(
    void **state) {
  (void)state;
  add("echo", "/echo", SRV_M_POST);
  add("echoes", "/echoes", SRV_M_POST);
  assert_int_equal(srv_route_of_site("echo.tree"), 1);
  assert_int_equal(srv_route_of_site("echo.tree.node"), 1);
  assert_int_equal(srv_route_of_site("echoes.x"), 2);
  assert_int_equal(srv_route_of_site("ech.x"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_of_site("echo"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_of_site(".tree"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_of_site("session.entry"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_of_site(NULL), SRV_ROUTE_OTHER);
}

/* The module's invariant: after a reset, the table is as at start. */
static void a_reset_forgets_every_route(void **state) {
  (void)state;
  add("echo", "/echo", SRV_M_POST);
  srv_router_reset();
  assert_int_equal(srv_router_count(), 1);
  assert_int_equal(srv_route_match("/echo"), SRV_ROUTE_OTHER);
  assert_int_equal(srv_route_of_site("echo.tree"), SRV_ROUTE_OTHER);
  assert_int_equal(add("echo", "/echo", SRV_M_POST), 1);
}

#define T(fn) cmocka_unit_test_setup(fn, reset)
static const struct CMUnitTest tests[] = {
    T(routes_get_indexes_from_one_and_match_their_exact_path),
    T(an_unknown_path_matches_other),
    T(head_is_allowed_wherever_get_is),
    T(method_names_map_to_their_bits_and_anything_else_is_other),
    T(the_allow_header_lists_the_methods_in_a_fixed_order),
    T(a_small_allow_buffer_is_cut_and_terminated),
    T(a_taken_id_or_path_is_refused),
    T(a_route_without_id_path_or_handler_is_refused),
    T(a_full_table_refuses_one_more_route),
    T(a_path_no_route_has_goes_to_the_first_route_that_owns_it),
    T(route_options_are_kept_per_route),
    T(a_site_name_belongs_to_the_route_named_before_its_first_dot),
    T(a_reset_forgets_every_route),
};

UNIT_MAIN("router", tests)

/* Slow clients: a request that trickles in, a byte at a time, is cut off
 * at --request-timeout with 408, while idle keep-alive connections and
 * requests that arrive in time are not disturbed. Under the
 * sanitizer builds this is what exercises the reaper thread against
 * libmicrohttpd's own threads. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static srv_t *srv;

static int start(void **state) {
  (void)state;
  static const char *const args[] = {"--request-timeout", "1", "--timeout", "30",
                                     NULL};
  srv = srv_start(args, NULL);
  return 0;
}

static int stop(void **state) {
  (void)state;
  int rc = srv_stop(srv);
  srv = NULL;
  return rc == 0 ? 0 : -1;
}

static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Send text a byte every gap_ms until the server closes or answers, then
 * read what it sent until it closes (at most 5 s). Returns the ms from the
 * first byte to the close. */
static unsigned trickle(int fd, const char *text, unsigned gap_ms, char *got,
                        size_t cap) {
  uint64_t t0 = 0;
  size_t n = 0, len = strlen(text);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
  for (size_t i = 0; i < len; i++) {
    if (send(fd, text + i, 1, MSG_NOSIGNAL) != 1) break;
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, (int)gap_ms) > 0) break; /* answered or closed */
  }
  for (int waited = 0; waited < 5000 && n + 1 < cap;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) == 0) {
      waited += 100;
      continue;
    }
    ssize_t r = recv(fd, got + n, cap - 1 - n, 0);
    if (r <= 0) break;
    n += (size_t)r;
  }
  got[n] = '\0';
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned)((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 - t0);
}

static void headers_trickled_a_byte_at_a_time_get_408_at_the_deadline(void **state) {
  (void)state;
  double before = stat_num(srv, "counters/request_timeouts");
  int fd = dial();
  char got[1024];
  unsigned ms = trickle(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: sssssssssssssssssssss\r\n\r\n",
                        200, got, sizeof got);
  close(fd);
  if (strncmp(got, "HTTP/1.1 408 ", 13)) fail_msg("answered: %.60s", got);
  assert_non_null(strstr(got, "Connection: close"));
  assert_non_null(strstr(got, "\"error\":\"request not received within 1 s"));
  /* 1 s, checked every 250 ms; a generous bound for a sanitizer build. */
  if (ms < 900 || ms > 4000) fail_msg("cut after %u ms", ms);
  assert_int_equal(stat_num(srv, "counters/request_timeouts") - before, 1);
}

static void a_body_trickled_a_byte_at_a_time_gets_408_and_leaves_no_memory(void **state) {
  (void)state;
  double live0 = stat_num(srv, "heap/live_bytes");
  int fd = dial();
  const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 64\r\n\r\n";
  assert_int_equal(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
  char got[1024];
  trickle(fd, "{\"slow\": \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}", 200,
          got, sizeof got);
  close(fd);
  if (strncmp(got, "HTTP/1.1 408 ", 13)) fail_msg("answered: %.60s", got);
  /* The half-read request was completed and its scope and body freed. */
  double live = 0;
  for (int i = 0; i < 100; i++) {
    live = stat_num(srv, "heap/live_bytes");
    if (live <= live0) break;
    sleep_ms(20);
  }
  assert_true(live <= live0);
}

static void an_idle_keepalive_connection_outlives_the_request_deadline(void **state) {
  (void)state;
  /* Idle time is --timeout's (30 s here): a connection that waits 2.5 s
   * between requests, over the 1 s deadline, is not cut, and its next
   * request, arriving at once, is served. */
  int fd = dial();
  const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  char got[2048];
  for (int i = 0; i < 2; i++) {
    if (i) sleep_ms(2500);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 3000), 1);
    ssize_t n = recv(fd, got, sizeof got - 1, 0);
    assert_true(n > 0);
    got[n] = '\0';
    if (strncmp(got, "HTTP/1.1 200 ", 13)) fail_msg("request %d: %.60s", i, got);
  }
  close(fd);
  assert_int_equal(stat_num(srv, "counters/request_timeouts"), 0);
}

static void requests_arriving_in_time_on_a_long_connection_are_all_served(void **state) {
  (void)state;
  /* One keep-alive connection, 30 requests 100 ms apart: 3 s in all, more
   * than the deadline, but each request arrives at once. */
  for (int i = 0; i < 30; i++) {
    http_resp_t r = http(srv, "GET", "/hello", NULL, 0, NULL);
    assert_int_equal(r.status, 200);
    http_free(&r);
    sleep_ms(100);
  }
  assert_int_equal(stat_num(srv, "counters/request_timeouts"), 0);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, start, stop)
  const struct CMUnitTest tests[] = {
      T(headers_trickled_a_byte_at_a_time_get_408_at_the_deadline),
      T(a_body_trickled_a_byte_at_a_time_gets_408_and_leaves_no_memory),
      T(an_idle_keepalive_connection_outlives_the_request_deadline),
      T(requests_arriving_in_time_on_a_long_connection_are_all_served),
  };
#undef T
  return cmocka_run_group_tests_name("server slow clients", tests, NULL, NULL);
}

/* mhd_minimal - the benchmark's floor: a libmicrohttpd server that answers
 * every request with a fixed body, configured like leaklab (epoll, a pool
 * of threads), so the gap between it and leaklab is leaklab's own cost.
 *
 * usage: mhd_minimal [--port N] [--threads N] [--port-file PATH]
 * Binds 127.0.0.1; stops on SIGINT or SIGTERM. */
#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

static const char body[] = "{\"message\":\"hello\"}\n";

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **state) {
  (void)cls, (void)url, (void)method, (void)version, (void)upload;
  if (*state == NULL) { /* first call: headers only */
    *state = (void *)1;
    return MHD_YES;
  }
  if (*upload_size) { /* drain a body */
    *upload_size = 0;
    return MHD_YES;
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(
      sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ok;
}

static long number(const char *opt, const char *v, long min, long max) {
  char *end;
  errno = 0;
  long n = v ? strtol(v, &end, 10) : 0;
  if (!v || errno || *end || n < min || n > max) {
    fprintf(stderr, "mhd_minimal: %s needs a number in %ld..%ld\n", opt, min,
            max);
    exit(2);
  }
  return n;
}

int main(int argc, char **argv) {
  long port = 8081, threads = 2;
  const char *port_file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--port")) port = number(argv[i++], v, 0, 65535);
    else if (!strcmp(argv[i], "--threads")) threads = number(argv[i++], v, 1, 64);
    else if (!strcmp(argv[i], "--port-file") && v) port_file = argv[++i];
    else {
      fprintf(stderr, "usage: mhd_minimal [--port N] [--threads N] [--port-file PATH]\n");
      return 2;
    }
  }
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* MHD's threads inherit this */
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
      NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &addr,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
      MHD_OPTION_CONNECTION_LIMIT, 10000u, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "mhd_minimal: cannot listen on 127.0.0.1:%ld\n", port);
    return 1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (port_file) {
    FILE *f = fopen(port_file, "w");
    if (!f || fprintf(f, "%u\n", info->port) < 0 || fclose(f)) {
      fprintf(stderr, "mhd_minimal: cannot write %s\n", port_file);
      MHD_stop_daemon(d);
      return 1;
    }
  }
  int sig;
  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  return 0;
}

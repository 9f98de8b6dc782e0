/* cli.h - the command line and its environment equivalents, declared once:
 * every option has a LEAKLAB_* variable; the command line wins. */
#ifndef SRV_CLI_H
#define SRV_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <lab/alloc.h>

typedef enum srv_opt_type {
  SRV_OPT_UINT, /* a whole number in [min, max] */
  SRV_OPT_SIZE, /* bytes, with an optional k/M/G suffix */
  SRV_OPT_STR,  /* text */
  SRV_OPT_HEAP, /* lab or libc */
  SRV_OPT_FLAG, /* on when given (env: 1/true/yes or 0/false/no) */
  SRV_OPT_PORT  /* a TCP port 0..65535 (0: any free one), or "" for none */
} srv_opt_type_t;

/* X(long name, field, type, metavar, default, min, max, env, help) */
#define SRV_CLI_OPTIONS(X)                                                   \
  X("port", port, SRV_OPT_UINT, "N", "8080", 0, 65535, "LEAKLAB_PORT",       \
    "TCP port to listen on; 0 picks a free one")                             \
  X("bind", bind, SRV_OPT_STR, "ADDR", "127.0.0.1", 0, 0, "LEAKLAB_BIND",    \
    "address to listen on")                                                  \
  X("threads", threads, SRV_OPT_UINT, "N", "2", 1, 64, "LEAKLAB_THREADS",    \
    "libmicrohttpd threads: a poll() thread pool, 1 = one internal thread")  \
  X("heap", heap, SRV_OPT_HEAP, "lab|libc", "lab", 0, 0, "LEAKLAB_HEAP",     \
    "heap backend: leaklab's own heap or malloc with the same accounting")   \
  X("stacks", stacks, SRV_OPT_UINT, "N", "0", 0, 64, "LEAKLAB_STACKS",       \
    "call-stack frames recorded per allocation, e.g. 16 (0: none, each "    \
    "block is known by its call site alone; stacks cost the server 10 to "  \
    "25 %, see BENCHMARKS.md)")                                              \
  X("sample-ms", sample_ms, SRV_OPT_UINT, "N", "250", 10, 60000,             \
    "LEAKLAB_SAMPLE_MS", "history sample interval in milliseconds")          \
  X("history", history, SRV_OPT_UINT, "N", "14400", 16, 57600,               \
    "LEAKLAB_HISTORY", "history samples kept (14400 = 1 h at 250 ms)")       \
  X("admin-token", admin_token, SRV_OPT_STR, "T", "", 0, 0,                  \
    "LEAKLAB_ADMIN_TOKEN",                                                   \
    "changing flags needs 'Authorization: Bearer T' (default: no token)")    \
  X("max-conns", max_conns, SRV_OPT_UINT, "N", "1024", 1, 1000000,           \
    "LEAKLAB_MAX_CONNS", "most connections served at once")                  \
  X("timeout", timeout_s, SRV_OPT_UINT, "S", "30", 0, 86400,                 \
    "LEAKLAB_TIMEOUT", "seconds before an idle connection is closed (0 = never)") \
  X("request-timeout", request_timeout_s, SRV_OPT_UINT, "S", "10", 0, 86400, \
    "LEAKLAB_REQUEST_TIMEOUT",                                               \
    "seconds a request may take to arrive whole from its first byte, "      \
    "however slowly it trickles in (408 and close beyond; 0 = no limit)")   \
  X("header-timeout", header_timeout_s, SRV_OPT_UINT, "S", "5", 0, 86400,   \
    "LEAKLAB_HEADER_TIMEOUT",                                                \
    "seconds a new connection may take to send its first request head, "     \
    "from the accept: 408 and close if part of it came, a plain close if "   \
    "nothing did (0 = no limit)")                                            \
  X("max-conns-per-client", max_conns_per_client, SRV_OPT_UINT, "N", "256",  \
    0, 1000000, "LEAKLAB_MAX_CONNS_PER_CLIENT",                              \
    "most connections from one client address; more are closed at once "    \
    "(0 = no limit)")                                                        \
  X("admin-port", admin_port, SRV_OPT_PORT, "N", "", 0, 65535,               \
    "LEAKLAB_ADMIN_PORT",                                                    \
    "also serve the dashboard, /healthz, /api/* and /metrics (not the demo " \
    "app) on this port of the same address, with 16 connections of its own " \
    "that no flood on --port can take; 0 picks a free one (default: none)")  \
  X("admin-port-file", admin_port_file, SRV_OPT_STR, "PATH", "", 0, 0,       \
    "LEAKLAB_ADMIN_PORT_FILE", "write the admin port to PATH once listening") \
  X("max-body", max_body, SRV_OPT_SIZE, "N", "1M", 0, 1073741824,            \
    "LEAKLAB_MAX_BODY", "largest request body in bytes (k/M/G suffixes); 413 beyond") \
  X("worker-timeout", worker_timeout_s, SRV_OPT_UINT, "S", "10", 0, 3600,   \
    "LEAKLAB_WORKER_TIMEOUT",                                                \
    "replace a worker that misses its heartbeat this long (stopped, or a "   \
    "request stuck in its handler): successor first, then it is killed "     \
    "(0 = never)")                                                           \
  X("worker-memory-limit", worker_memory_limit, SRV_OPT_SIZE, "BYTES", "0", 0, \
    1099511627776, "LEAKLAB_WORKER_MEMORY_LIMIT",                            \
    "cap the worker's heap at BYTES (k/M/G suffixes): past it allocations "  \
    "fail as out of memory, app requests answer 503 and the worker dies "    \
    "where a block cannot fail; the flag worker.memory_limit_bytes changes " \
    "it live (0 = no limit)")                                                \
  X("single-process", single_process, SRV_OPT_FLAG, NULL, "0", 0, 1,         \
    "LEAKLAB_SINGLE_PROCESS",                                                \
    "run the worker alone, without a supervisor (for a debugger or "          \
    "valgrind): no recycling, no restart after a crash")                     \
  X("port-file", port_file, SRV_OPT_STR, "PATH", "", 0, 0,                   \
    "LEAKLAB_PORT_FILE", "write the port to PATH once listening")

typedef struct srv_cfg {
  unsigned port;            /* --port */
  const char *bind;         /* --bind */
  unsigned threads;         /* --threads */
  lab_backend_t heap;       /* --heap */
  unsigned stacks;          /* --stacks */
  unsigned sample_ms;       /* --sample-ms */
  unsigned history;         /* --history */
  const char *admin_token;  /* --admin-token ("" = none) */
  unsigned max_conns;       /* --max-conns */
  unsigned timeout_s;       /* --timeout */
  unsigned request_timeout_s; /* --request-timeout */
  unsigned header_timeout_s; /* --header-timeout */
  unsigned max_conns_per_client; /* --max-conns-per-client */
  int admin_port;           /* --admin-port (-1 = none) */
  const char *admin_port_file; /* --admin-port-file ("" = none) */
  size_t max_body;          /* --max-body */
  unsigned worker_timeout_s; /* --worker-timeout */
  size_t worker_memory_limit; /* --worker-memory-limit (0 = none) */
  bool single_process;      /* --single-process */
  const char *port_file;    /* --port-file ("" = none) */
} srv_cfg_t;

#define SRV_CLI_RUN 0  /* srv_cli_parse: go on and serve */
#define SRV_CLI_EXIT 1 /* srv_cli_parse: --help or --version done */

/* Fill *cfg from defaults, then the environment, then argv. Returns
 * SRV_CLI_RUN, SRV_CLI_EXIT (help or version printed on stdout) or
 * SRV_EINVAL (message on stderr; exit status 2). */
int srv_cli_parse(int argc, char **argv, srv_cfg_t *cfg);
/* Print the usage text to f. */
void srv_cli_usage(FILE *f);

#endif /* SRV_CLI_H */

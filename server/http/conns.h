/* conns.h - the connections a worker serves, and what protects the server
 * from clients that hold connections without using them.
 *
 * - The request deadline (--request-timeout). libmicrohttpd's timeout
 *   (--timeout) counts idle time only: a client that sends its headers a
 *   byte a second is never idle and would hold a connection for as long
 *   as it likes (slowloris). So a request must arrive whole within a
 *   deadline of its first byte.
 * - The first head (--header-timeout). A new connection must deliver its
 *   first request head within this of the accept, as HAProxy's
 *   `timeout http-request` and nginx's `client_header_timeout` count it:
 *   one that sent nothing is closed, one that sent part of a head gets
 *   408. Between requests a keep-alive connection is idle-timed as before.
 * - A limit per client address (--max-conns-per-client): beyond it, new
 *   connections from that address are closed at once.
 * - Room at the limit (--max-conns): a new connection that finds the
 *   server full closes the connection that has sent nothing for longest,
 *   rather than waiting in the backlog behind it.
 *
 * A reaper thread looks at every connection every SRV_CONNS_TICK_MS: the
 * kernel's count of bytes received (TCP_INFO) tells when a request began
 * to arrive. An overdue connection gets 408 and is shut down, under the
 * registry's lock, before libmicrohttpd can close and reuse the
 * descriptor. What it refused or closed goes to a notice callback at most
 * once a second. */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define SRV_CONNS_TICK_MS 250 /* how often the reaper looks */
#define SRV_CONNS_NOTICE_MS 1000 /* notices at most this often */

typedef struct srv_conn srv_conn_t;

/* How the connections are limited; 0 turns a limit off. */
typedef struct srv_conns_config {
  unsigned deadline_s;      /* a request arrives whole within this of its
                               first byte (--request-timeout) */
  unsigned head_timeout_s;  /* a first head within this of the accept
                               (--header-timeout) */
  unsigned max_conns;       /* connections on the main port
                               (--max-conns) */
  unsigned per_client;      /* connections from one address
                               (--max-conns-per-client) */
} srv_conns_config_t;

/* Told what was refused or closed, in one sentence (from the reaper). */
typedef void (*srv_conns_notice_fn)(const char *text);

/* Register the conns' counters; SRV_ENOMEM. */
int srv_conns_setup(void);
/* Who hears of refused and closed connections (NULL: nobody). */
void srv_conns_set_notice(srv_conns_notice_fn fn);
/* Start the reaper; SRV_EIO if the thread cannot start. */
int srv_conns_start(const srv_conns_config_t *cfg);
/* Stop the reaper (after the daemons have closed every connection). */
void srv_conns_stop(void);
/* Whether to accept a connection from addr on the main port: false over
 * the per-client limit (counted); at --max-conns, the connection idle the
 * longest is closed to make room (counted) or, with none idle, false. */
bool srv_conns_admit(const struct sockaddr *addr, socklen_t len);
/* A connection opened on socket fd from addr (NULL: unknown); admin: on
 * the admin port, outside the limits. NULL when out of memory (it is then
 * counted but has no deadline). */
srv_conn_t *srv_conns_open(int fd, const struct sockaddr *addr, bool admin);
/* The connection closed (c may be NULL). */
void srv_conns_close(srv_conn_t *c);
/* A request's head is in (c may be NULL). */
void srv_conns_request(srv_conn_t *c);
/* A response is queued: stop the clock (c may be NULL). */
void srv_conns_answering(srv_conn_t *c);
/* A response completed: the next request may start (c may be NULL). */
void srv_conns_waiting(srv_conn_t *c);
/* Connections open now. */
uint64_t srv_conns_count(void);

#endif /* SRV_CONNS_H */

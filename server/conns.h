/* conns.h - the connections a worker serves, and the request deadline
 * that closes slow clients.
 *
 * libmicrohttpd's timeout (--timeout) counts idle time only: a client
 * that sends its headers a byte a second is never idle and would hold a
 * connection, and a slot of --max-conns, for as long as it likes (the
 * slowloris attack). So every connection has a clock that starts when it
 * opens and again when a response completes, and stops while a response
 * is produced and sent. A reaper thread looks at the clocks every
 * SRV_CONNS_TICK_MS; past the deadline, a connection that received bytes
 * of a request gets 408 Request Timeout and is closed, and one that
 * received nothing (an idle keep-alive connection) is just closed, which
 * every HTTP client expects of keep-alive. Either way the socket is shut
 * down under the registry's lock, before libmicrohttpd can close it, so
 * the reaper never touches a descriptor reused by another connection. */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

#include <stdint.h>

#define SRV_CONNS_TICK_MS 250 /* how often the reaper looks */

typedef struct srv_conn srv_conn_t;

/* Start the reaper with a deadline of deadline_s seconds (0: no deadline
 * and no thread); SRV_EIO if the thread cannot start. */
int srv_conns_start(unsigned deadline_s);
/* Stop the reaper (after the daemon has closed every connection). */
void srv_conns_stop(void);
/* A connection opened on socket fd; NULL when out of memory (it is then
 * counted but has no deadline). */
srv_conn_t *srv_conns_open(int fd);
/* The connection closed (c may be NULL). */
void srv_conns_close(srv_conn_t *c);
/* A response is queued: stop the clock (c may be NULL). */
void srv_conns_answering(srv_conn_t *c);
/* A response completed: the next request's clock starts (c may be NULL). */
void srv_conns_waiting(srv_conn_t *c);
/* Connections open now. */
uint64_t srv_conns_count(void);

#endif /* SRV_CONNS_H */

/* conns.h - the connections a worker serves, and the request deadline
 * that closes slow clients.
 *
 * libmicrohttpd's timeout (--timeout) counts idle time only: a client
 * that sends its headers a byte a second is never idle and would hold a
 * connection, and a slot of --max-conns, for as long as it likes (the
 * slowloris attack). So a request must arrive whole within a deadline
 * of its first byte. A reaper thread looks at every connection between
 * responses every SRV_CONNS_TICK_MS: the kernel's count of bytes received
 * (TCP_INFO) tells when a request started to arrive; past the deadline
 * the connection gets 408 Request Timeout and is shut down, under the
 * registry's lock, before libmicrohttpd can close and reuse the
 * descriptor. A connection that receives nothing is idle, and left to
 * libmicrohttpd's idle timeout. */
#ifndef SRV_CONNS_H
#define SRV_CONNS_H

#include <stdint.h>

#define SRV_CONNS_TICK_MS 250 /* how often the reaper looks */

typedef struct srv_conn srv_conn_t;

/* Register the conns' counter (request_timeouts); SRV_ENOMEM. */
int srv_conns_setup(void);
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
/* A response completed: the next request may start (c may be NULL). */
void srv_conns_waiting(srv_conn_t *c);
/* Connections open now. */
uint64_t srv_conns_count(void);

#endif /* SRV_CONNS_H */

/* reclaim.h - guard.request_scope: when a request ends, its heap scope
 * frees every block it allocated and neither freed nor detached, like an
 * nginx or APR request pool. Off, the blocks stay live and are counted as
 * left behind. */
#ifndef SRV_RECLAIM_H
#define SRV_RECLAIM_H

#include <stdint.h>

/* Register the flag guard.request_scope; SRV_E2BIG or SRV_EINVAL. */
int srv_reclaim_register(void);
/* Register its counters and request hook; SRV_ENOMEM. */
int srv_reclaim_setup(void);
/* Blocks and bytes reclaimed so far. */
uint64_t srv_reclaim_blocks(void);
uint64_t srv_reclaim_bytes(void);

#endif /* SRV_RECLAIM_H */

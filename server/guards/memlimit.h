/* memlimit.h - worker.memory_limit_bytes (--worker-memory-limit): the
 * worker's memory, capped, so that running out can be shown on a machine
 * with plenty.
 *
 * The cap is the heap's own (lab_set_limit: the lab heap's mapped bytes,
 * the libc backend's live bytes), not the process's address space
 * (RLIMIT_AS): it fails exactly the allocations a leak makes, in the
 * app's code, while libmicrohttpd's buffers, thread stacks and the
 * observer go on working (the HTTP layer's reserve, http.h), so what
 * happens can be watched and read. An address-space limit fails whatever
 * allocates next, libc's malloc inside libmicrohttpd included, and the
 * worker goes deaf before it dies.
 *
 * What running out does:
 * - an allocation of the try family fails: the request answers 503 with
 *   a JSON error naming the size and site (http.h), an `oom` event says
 *   so (one a second at most, with the count of the others), and
 *   oom_refusals counts each;
 * - one of the never-NULL family cannot fail: its handler logs an `oom`
 *   event and ends the worker with status SRV_MEMLIMIT_EXIT, which the
 *   supervisor's crash event names "ran out of memory" before it restarts
 *   the worker, as a C program that calls xmalloc dies. */
#ifndef SRV_MEMLIMIT_H
#define SRV_MEMLIMIT_H

#include <stdint.h>

/* The worker's exit status when memory ran out where it could not fail. */
#define SRV_MEMLIMIT_EXIT 3

/* Register the flag worker.memory_limit_bytes with `bytes` as its default
 * (0: no limit); SRV_E2BIG or SRV_EINVAL. */
int srv_memlimit_register(uint64_t bytes);
/* Register its counter and request hook; SRV_ENOMEM. */
int srv_memlimit_setup(void);
/* In a worker: apply the limit and take the heap's refusals and its OOM
 * handler. */
void srv_memlimit_install(void);
/* Allocations refused so far. */
uint64_t srv_memlimit_refusals(void);

#endif /* SRV_MEMLIMIT_H */

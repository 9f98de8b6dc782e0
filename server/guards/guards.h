/* guards.h - the defences a user switches on live, as one layer: the
 * request scope (reclaim.h), the memory budget (budget.h) and worker
 * recycling (recycle.h); and the worker's memory limit (memlimit.h), the
 * danger they defend against, made real. Each registers its flags, counters and request
 * hooks; this module sets them all up and adds their figures to
 * /api/stats ("guards"). */
#ifndef SRV_GUARDS_H
#define SRV_GUARDS_H

#include <stdint.h>

/* Register every guard's flags, the memory limit's with its default
 * (--worker-memory-limit; no region needed: the fuzz targets parse them);
 * SRV_E2BIG or SRV_EINVAL. */
int srv_guards_register(uint64_t memory_limit);
/* Set every guard up (their blocks, counters and hooks, the stats
 * section, the budget /api/leaks measures against); SRV_ENOMEM. */
int srv_guards_setup(void);

#endif /* SRV_GUARDS_H */

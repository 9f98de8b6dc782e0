/* budget.h - guard.budget_bytes, after Envoy's overload manager: a memory
 * budget for the heap's live bytes. From 95 % of it every response says
 * Connection: close; over it, requests of sheddable routes (the demo app)
 * are refused with 503 as soon as their headers are in, counted in
 * shed_requests, one shed event marking each crossing. /healthz, the JSON API,
 * /metrics and the page still answer. */
#ifndef SRV_BUDGET_H
#define SRV_BUDGET_H

#include <stdint.h>

/* Register the flag guard.budget_bytes; SRV_E2BIG or SRV_EINVAL. */
int srv_budget_register(void);
/* Make its block in the region, register its counter and request hook;
 * SRV_ENOMEM. */
int srv_budget_setup(void);
/* The budget in bytes (0: off). */
uint64_t srv_budget_bytes(void);
/* Where live bytes stand against a budget: 0 below 95 % (or no budget),
 * 1 from 95 %, 2 over 100 %. */
unsigned srv_budget_level(uint64_t live, uint64_t budget);
/* Requests refused so far. */
uint64_t srv_budget_shed(void);

#endif /* SRV_BUDGET_H */

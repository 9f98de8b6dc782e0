/* stats.h - the /api/stats snapshot: the worker answering, its process and
 * heap, requests, lifetime counters and flags, plus the sections other
 * layers add (the guards' figures). */
#ifndef SRV_STATS_H
#define SRV_STATS_H

#include "core/json.h"

#define SRV_STATS_SECTIONS_MAX 8

/* Writes one member (an object named `key`) of the document. */
typedef void (*srv_stats_section_fn)(srv_json_t *j, const char *key);

/* Add a section `key` (static text) written by fn after the built-in
 * ones; SRV_E2BIG. Before the first fork. */
int srv_stats_add_section(const char *key, srv_stats_section_fn fn);
/* Write the /api/stats document (docs/ARCHITECTURE.md lists its fields). */
void srv_stats_json(srv_json_t *j);

#endif /* SRV_STATS_H */

/* sites.c - site names and the per-name merge of the heap's site
 * counters. */
#include "observe/sites.h"

#include <stdio.h>
#include <string.h>

#include "core/mem.h"

void srv_sites_name(const lab_site_t *site, char *out, size_t cap) {
  if (!cap) return;
  if (!site) {
    out[0] = '\0';
    return;
  }
  if (site->name) {
    snprintf(out, cap, "%s", site->name);
    return;
  }
  snprintf(out, cap, "%s:%d", site->file ? srv_sites_file(site) : "?",
           site->line);
}

const char *srv_sites_basename(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

const char *srv_sites_file(const lab_site_t *site) {
  return srv_sites_basename(site && site->file ? site->file : "");
}

void srv_sites_errors_json(srv_json_t *j, const char *key,
                           const uint64_t errors[LAB_FAULT_COUNT]) {
  srv_json_obj(j, key);
#define SRV__SITE_ERR(name, desc)                                            \
  if (errors[LAB_FAULT_##name]) srv_json_u64(j, #name, errors[LAB_FAULT_##name]);
  LAB_FAULT_MAP(SRV__SITE_ERR)
#undef SRV__SITE_ERR
  srv_json_end(j);
}

srv_site_row_t *srv_sites_merge(bool live_only, size_t *n) {
  const lab_site_t *site = SRV_MEM_OUTSIDE;
  *n = 0;
  /* Sites registered meanwhile are left for the next call. */
  size_t cap = lab_site_stats(NULL, 0) + 16;
  lab_site_stats_t *all = srv_mem_calloc(cap, sizeof *all, site);
  srv_site_row_t *rows = srv_mem_calloc(cap, sizeof *rows, site);
  if (!all || !rows) {
    srv_mem_free(all, site);
    srv_mem_free(rows, site);
    return NULL;
  }
  size_t got = lab_site_stats(all, cap), m = 0;
  if (got > cap) got = cap;
  for (size_t i = 0; i < got; i++) {
    if (!all[i].site || (live_only && !all[i].live_blocks)) continue;
    srv_route_t r = srv_route_of_site(all[i].site->name);
    char name[SRV_NAME_MAX];
    srv_sites_name(all[i].site, name, sizeof name);
    size_t k = 0;
    while (k < m && strcmp(rows[k].name, name)) k++;
    if (k == m) {
      memcpy(rows[m].name, name, sizeof name);
      rows[m].site = all[i].site;
      rows[m].route = r;
      m++;
    }
#define SRV__SITE_ROW_ADD(field, kind, metric, help) rows[k].field += all[i].field;
    LAB_SITE_STAT_FIELDS(SRV__SITE_ROW_ADD)
#undef SRV__SITE_ROW_ADD
    for (int e = 0; e < LAB_FAULT_COUNT; e++) rows[k].errors[e] += all[i].errors[e];
  }
  srv_mem_free(all, site);
  *n = m;
  return rows;
}

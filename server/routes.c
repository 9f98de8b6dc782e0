/* routes.c - lookups over the route table. */
#include "routes.h"

#include <string.h>

#include <dash/assets.h>

static const char *const srv__route_paths[SRV_ROUTE_COUNT] = {
#define SRV__ROUTE_PATH(id, path, methods, handler) path,
    SRV_ROUTE_MAP(SRV__ROUTE_PATH)
#undef SRV__ROUTE_PATH
    "other",
};

static const char *const srv__route_ids[SRV_ROUTE_COUNT] = {
#define SRV__ROUTE_ID(id, path, methods, handler) #id,
    SRV_ROUTE_MAP(SRV__ROUTE_ID)
#undef SRV__ROUTE_ID
    "other",
};

static const unsigned srv__route_methods[SRV_ROUTE_COUNT] = {
#define SRV__ROUTE_M(id, path, methods, handler) (methods),
    SRV_ROUTE_MAP(SRV__ROUTE_M)
#undef SRV__ROUTE_M
    0,
};

const char *srv_route_path(srv_route_t r) {
  return (unsigned)r < SRV_ROUTE_COUNT ? srv__route_paths[r] : "other";
}

const char *srv_route_id(srv_route_t r) {
  return (unsigned)r < SRV_ROUTE_COUNT ? srv__route_ids[r] : "other";
}

srv_route_t srv_route_of_site(const char *name) {
  if (!name) return SRV_ROUTE_OTHER;
  const char *dot = strchr(name, '.');
  if (!dot) return SRV_ROUTE_OTHER;
  size_t n = (size_t)(dot - name);
  for (int r = 0; r < SRV_ROUTE_OTHER; r++)
    if (strlen(srv__route_ids[r]) == n && !memcmp(srv__route_ids[r], name, n))
      return (srv_route_t)r;
  return SRV_ROUTE_OTHER;
}

srv_route_t srv_route_match(const char *path) {
  for (int r = 0; r < SRV_ROUTE_OTHER; r++)
    if (!strcmp(srv__route_paths[r], path)) return (srv_route_t)r;
  /* The dashboard's own files are served by the root route. */
  if (dash_asset_find(path)) return SRV_ROUTE_root;
  return SRV_ROUTE_OTHER;
}

unsigned srv_route_methods(srv_route_t r) {
  unsigned m = (unsigned)r < SRV_ROUTE_COUNT ? srv__route_methods[r] : 0;
  return (m & SRV_M_GET) ? (m | SRV_M_HEAD) : m;
}

int srv_route_is_app(srv_route_t r) {
  return r == SRV_ROUTE_hello || r == SRV_ROUTE_echo || r == SRV_ROUTE_session ||
         r == SRV_ROUTE_blob || r == SRV_ROUTE_report;
}

/* router.c - the route table and lookups over it. */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

static srv_route_def_t srv__routes[SRV_ROUTE_SLOTS] = {
    {"other", "other", 0, NULL, 0, NULL},
};
static int srv__n = 1;

int srv_router_add(const srv_route_def_t *def) {
  if (!def || !def->id || !def->path || !def->handler || !def->id[0])
    return SRV_EINVAL;
  for (int r = 1; r < srv__n; r++)
    if (!strcmp(srv__routes[r].id, def->id) ||
        !strcmp(srv__routes[r].path, def->path))
      return SRV_EINVAL;
  if (srv__n == SRV_ROUTE_SLOTS) return SRV_E2BIG;
  srv__routes[srv__n] = *def;
  return srv__n++;
}

void srv_router_reset(void) { srv__n = 1; }

int srv_router_count(void) { return srv__n; }

static const srv_route_def_t *srv__get(srv_route_t r) {
  return r > 0 && r < srv__n ? &srv__routes[r] : &srv__routes[0];
}

const char *srv_route_path(srv_route_t r) { return srv__get(r)->path; }
const char *srv_route_id(srv_route_t r) { return srv__get(r)->id; }
srv_route_fn srv_route_handler(srv_route_t r) { return srv__get(r)->handler; }

bool srv_route_has(srv_route_t r, unsigned opt) {
  return (srv__get(r)->options & opt) != 0;
}

srv_route_t srv_route_of_site(const char *name) {
  if (!name) return SRV_ROUTE_OTHER;
  const char *dot = strchr(name, '.');
  if (!dot) return SRV_ROUTE_OTHER;
  size_t n = (size_t)(dot - name);
  for (int r = 1; r < srv__n; r++)
    if (strlen(srv__routes[r].id) == n && !memcmp(srv__routes[r].id, name, n))
      return r;
  return SRV_ROUTE_OTHER;
}

srv_route_t srv_route_match(const char *path) {
  for (int r = 1; r < srv__n; r++)
    if (!strcmp(srv__routes[r].path, path)) return r;
  for (int r = 1; r < srv__n; r++)
    if (srv__routes[r].owns && srv__routes[r].owns(path)) return r;
  return SRV_ROUTE_OTHER;
}

unsigned srv_route_methods(srv_route_t r) {
  unsigned m = srv__get(r)->methods;
  return (m & SRV_M_GET) ? (m | SRV_M_HEAD) : m;
}

static const struct {
  unsigned m;
  const char *name;
} srv__methods[] = {
    {SRV_M_GET, "GET"},     {SRV_M_HEAD, "HEAD"},   {SRV_M_POST, "POST"},
    {SRV_M_PATCH, "PATCH"}, {SRV_M_PUT, "PUT"},     {SRV_M_DELETE, "DELETE"},
};

unsigned srv_route_method(const char *name) {
  for (size_t i = 0; i < sizeof srv__methods / sizeof srv__methods[0]; i++)
    if (!strcmp(srv__methods[i].name, name)) return srv__methods[i].m;
  return SRV_M_OTHER;
}

const char *srv_route_allow(srv_route_t r, char *buf, size_t cap) {
  unsigned m = srv_route_methods(r);
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof srv__methods / sizeof srv__methods[0]; i++) {
    if (!(m & srv__methods[i].m)) continue;
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", srv__methods[i].name);
  }
  return buf;
}

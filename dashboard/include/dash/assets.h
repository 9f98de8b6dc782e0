/* dash/assets.h - the dashboard's files, embedded at build time. */
#ifndef DASH_ASSETS_H
#define DASH_ASSETS_H

#include <stddef.h>
#include <string.h>

typedef struct dash_asset {
  const char *path;           /* URL path, e.g. "/" or "/uplot.min.js" */
  const char *type;           /* Content-Type */
  const unsigned char *data;  /* the bytes */
  size_t len;                 /* how many */
} dash_asset_t;

/* Every asset; the list ends with an entry whose path is NULL. */
extern const dash_asset_t dash_assets[];

/* The asset served at `path`, or NULL. */
static inline const dash_asset_t *dash_asset_find(const char *path) {
  for (const dash_asset_t *a = dash_assets; a->path; a++)
    if (!strcmp(a->path, path)) return a;
  return NULL;
}

#endif /* DASH_ASSETS_H */

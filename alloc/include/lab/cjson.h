/* lab/cjson.h - route cJSON's allocations through the lab heap.
 *
 * Include after <cjson/cJSON.h>. With hooks set, cJSON no longer uses
 * realloc (it mallocs, copies and frees instead), so printing a document
 * shows as several allocations. Charge a parse to a site of your own with
 * lab_hook_site() around it; otherwise blocks land on the "cjson" site. */
#ifndef LAB_CJSON_H
#define LAB_CJSON_H

#include <lab/alloc.h>

/* Make cJSON allocate from the lab heap from now on. */
static inline void lab_cjson_install(void) {
  cJSON_Hooks hooks = {lab_hook_malloc, lab_hook_free};
  cJSON_InitHooks(&hooks);
}

#endif /* LAB_CJSON_H */

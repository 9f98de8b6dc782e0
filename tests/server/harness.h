/* harness.h - start the real leaklab binary on an ephemeral loopback port
 * and talk to it over HTTP with libcurl. */
#ifndef SRV_TEST_HARNESS_H
#define SRV_TEST_HARNESS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct srv {
  pid_t pid;            /* the server process */
  unsigned port;        /* where it listens */
  char dir[64];         /* its scratch directory */
  void *curl;           /* one handle: requests reuse its connection */
} srv_t;

typedef struct http_resp {
  long status;          /* HTTP status, 0 on transport failure */
  char *body;           /* NUL-terminated (malloc) */
  size_t len;           /* body bytes */
  char *headers;        /* raw response headers (malloc) */
} http_resp_t;

/* Start leaklab with --port 0 --port-file and the given extra arguments
 * (NULL-terminated, may be NULL) and environment additions ("K=V",
 * NULL-terminated, may be NULL); fails the test if it does not listen. */
srv_t *srv_start(const char *const *args, const char *const *env);
/* SIGTERM the server and wait for it; returns its exit status (or 128 +
 * signal number, or -1 if it had to be killed). */
int srv_stop(srv_t *s);
/* The same with another signal. */
int srv_stop_with(srv_t *s, int sig);
/* Send the server process (the supervisor) a signal and go on. */
void srv_signal(srv_t *s, int sig);

/* One request. body may be NULL; len < 0 means strlen(body). headers is a
 * NULL-terminated list of "Name: value" lines, may be NULL. */
http_resp_t http(srv_t *s, const char *method, const char *path,
                 const char *body, long len, const char *const *headers);
/* Free a response. */
void http_free(http_resp_t *r);
/* GET path and parse its JSON body (fails the test if not JSON); the
 * status goes to *status if not NULL. Free with cJSON_Delete. */
cJSON *http_json(srv_t *s, const char *method, const char *path,
                 const char *body, long *status);
/* Whether the raw headers hold "Name: value" (name case-insensitive). */
bool http_has_header(const http_resp_t *r, const char *name,
                     const char *value);

/* The item at a '/'-separated path ("heap/live_bytes"), or NULL. */
cJSON *jget(cJSON *root, const char *path);
/* Its number (fails the test if it is not one). */
double jnum(cJSON *root, const char *path);

/* GET /api/stats and return the number at `path`. */
double stat_num(srv_t *s, const char *path);
/* Site `name` from /api/leaks?top=4096 (a copy), or NULL if not live. */
cJSON *leak_site(srv_t *s, const char *name);
/* Live bytes of site `name` (0 if not live). */
uint64_t site_bytes(srv_t *s, const char *name);
/* Total bytes ever allocated at site `name` (0 if unknown). */
uint64_t site_total_bytes(srv_t *s, const char *name);
/* PATCH /api/flags with a JSON object; fails the test unless 200. */
void set_flags(srv_t *s, const char *json);
/* Newest event sequence number. */
uint64_t last_event(srv_t *s);
/* Heap errors of one kind ("overflow", ...) now. */
uint64_t heap_errors(srv_t *s, const char *kind);
/* Count events after `since` of type heap_error with this kind and site
 * (and seen_at / freed_at when not NULL). */
unsigned count_events(srv_t *s, uint64_t since, const char *kind,
                      const char *site, const char *seen_at,
                      const char *freed_at);
/* Events of a type after `since`, and the message of the last one in
 * last (cap bytes; may be NULL). */
unsigned events_of(srv_t *s, uint64_t since, const char *type, char *last,
                   size_t cap);
/* Send n identical requests, failing the test unless each answers
 * `status`. */
void repeat(srv_t *s, unsigned n, const char *method, const char *path,
            const char *body, long status);
/* Sleep ms milliseconds. */
void sleep_ms(unsigned ms);
/* Monotonic ms, for elapsed times. */
uint64_t mono_ms(void);

#endif /* SRV_TEST_HARNESS_H */

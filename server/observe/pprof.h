/* pprof.h - heap profiles for `go tool pprof`: the gzipped profile.proto
 * (github.com/google/pprof, proto/profile.proto) and the legacy text form
 * Go's runtime/pprof writes for a heap profile with ?debug=1.
 *
 * The input is generic: samples of call stacks with four counts and two
 * labels, and a symbolizer (srv_symbols through srv_pprof_symbols, or a
 * callback of the caller's). Each distinct address becomes one Location,
 * symbolized once per profile.
 *
 * The protobuf wire format is written by hand (varints and
 * length-delimited fields, about a hundred lines): profile.proto needs
 * only that, and protobuf-c, the one maintained C library, would bring
 * protoc-c and a code generation step into the build for it.
 *
 * Values are not sampled: the lab heap counts every allocation, so the
 * profile's period is 1 (space/bytes) and pprof scales nothing. Go's
 * 524288 is its sampling rate and would be wrong here.
 *
 * Everything is allocated where the output buffer is (its site, or
 * outside the lab heap: core/mem.h), zlib's state included, and freed
 * before returning but the output. */
#ifndef SRV_PPROF_H
#define SRV_PPROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "observe/symbols.h"

/* One call stack and what was allocated from it. */
typedef struct srv_pprof_sample {
  const uintptr_t *addrs;  /* return addresses, innermost first */
  size_t depth;            /* entries in addrs */
  int64_t alloc_objects;   /* blocks allocated from here */
  int64_t alloc_space;     /* their bytes */
  int64_t inuse_objects;   /* of those, still live (a difference may be
                              negative) */
  int64_t inuse_space;     /* their bytes */
  const char *route;       /* string label "route", NULL or "" for none */
  const char *site;        /* string label "site", NULL or "" for none */
} srv_pprof_sample_t;

/* Resolves one address as srv_symbols_lookup does (flags:
 * SRV_SYMBOLS_RETURN or 0); the frame's strings must stay valid until the
 * writer returns. */
typedef int (*srv_pprof_symbolize_fn)(void *ctx, uintptr_t addr, unsigned flags,
                                      srv_frame_t *out);

/* A profile to write. */
typedef struct srv_pprof_profile {
  const srv_pprof_sample_t *samples; /* in the order they are written */
  size_t nsamples;                   /* entries in samples */
  int64_t time_nanos;                /* when it was taken, unix ns (0: unset) */
  int64_t duration_nanos;            /* the window a difference covers, or 0 */
  bool leaf_is_pc;                   /* addrs[0] is where the code was (a
                                        sampled pc), not a return address */
  const char *default_sample;        /* the sample type pprof shows first
                                        ("alloc_space"), NULL: the last,
                                        inuse_space */
  srv_pprof_symbolize_fn symbolize;  /* e.g. srv_pprof_symbols */
  void *symbolize_ctx;               /* its ctx, e.g. a srv_symbols_t * */
} srv_pprof_profile_t;

/* A srv_pprof_symbolize_fn over srv_symbols_lookup; ctx is the
 * srv_symbols_t *. */
int srv_pprof_symbols(void *ctx, uintptr_t addr, unsigned flags, srv_frame_t *out);
/* Append p to out as a gzipped profile.proto: sample types alloc_objects,
 * alloc_space, inuse_objects, inuse_space (pprof shows the last by
 * default). SRV_OK, SRV_EINVAL (no symbolizer), SRV_ENOMEM, SRV_EIO (zlib
 * failed). */
int srv_pprof_write(const srv_pprof_profile_t *p, srv_buf_t *out);
/* Append p to out as Go's debug=1 heap text: a "heap profile:" header
 * with the totals, then per sample "inuse_objects: inuse_space
 * [alloc_objects: alloc_space] @ 0x.. 0x.." and its frames as "#" lines
 * (with its labels as one more), and the modules as /proc/PID/maps lines
 * after "MAPPED_LIBRARIES:". pprof's parser takes no negative total or
 * allocation count: this form is for snapshots, not differences. Returns
 * as srv_pprof_write. */
int srv_pprof_write_text(const srv_pprof_profile_t *p, srv_buf_t *out);

#endif /* SRV_PPROF_H */

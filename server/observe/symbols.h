/* symbols.h - code addresses of a process (this one, or another by pid)
 * turned into frames: function, source file and line, module, build id.
 *
 * Built on elfutils' libdwfl over /proc/PID/maps: function names come
 * from the ELF symbol tables (.symtab, else .dynsym: cJSON and the libc
 * without debug info still get names), file:line and inlined calls from
 * DWARF when the module has it (the server's code only if built with -g).
 * Each address is resolved once and cached; a miss outside every known
 * module re-reads the maps (a dlopen since), at most once a second.
 *
 * libdwfl looks for separate debug info locally (/usr/lib/debug) and, if
 * DEBUGINFOD_URLS is set in the environment, from those servers: a first
 * miss in a module without local debug info may then wait on the network.
 * Unset, nothing leaves the machine (libdw still loads libdebuginfod and
 * its libcurl on the first such miss).
 *
 * Meant for the observer, off the allocation path: a lookup that misses
 * reads ELF and DWARF files (tens of microseconds to milliseconds), a hit
 * takes a mutex and a hash probe. Any thread may call; one mutex guards
 * the lot, so fork only while no lookup runs.
 *
 * The cache lives on plain malloc, not the lab heap: it outlives the
 * request that first fills it (a request scope would reclaim it), libdw's
 * own far larger tables are on malloc anyway, and a heap profile should
 * not change by being symbolized. Its size is in srv_symbols_stats_t.
 *
 * Return addresses: a captured stack holds, for every frame but a
 * sampled leaf, the address after the call, which may already belong to
 * the next line or (after a call that never returns) the next function.
 * Pass SRV_SYMBOLS_RETURN for those: the lookup is then made at addr - 1,
 * inside the call instruction. */
#ifndef SRV_SYMBOLS_H
#define SRV_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct srv_symbols srv_symbols_t;

#define SRV_SYMBOLS_RETURN 1u /* addr is a return address: look up addr - 1 */

/* One function inlined at an address, and where it stands in its source. */
typedef struct srv_frame_line {
  const char *function;  /* the inlined function's name */
  const char *file;      /* its source file, or "" */
  int line;              /* the line in it, or 0 */
} srv_frame_line_t;

#define SRV_FRAME_FUNCTION 1u /* function is a real name, not "0x..." */
#define SRV_FRAME_LINE 2u     /* file and line are known */
#define SRV_FRAME_MODULE 4u   /* the address lies in a mapped ELF file */
#define SRV_FRAME_MAIN 8u     /* that file is the process's executable */

/* What an address is. Strings and arrays belong to the symbolizer and
 * stay valid until srv_symbols_close; they are never NULL. */
typedef struct srv_frame {
  uintptr_t addr;            /* the address as given */
  unsigned flags;            /* SRV_FRAME_* */
  const char *function;      /* the function the symbol table names here
                                (the one actually called), else
                                "0x<addr>" */
  uint64_t function_offset;  /* the address looked up less the function's
                                start, or 0 */
  const char *file;          /* that function's source file, or "" */
  int line;                  /* the line of that function the address is
                                on (the call of the outermost inlined
                                function, when inlined), or 0 */
  const srv_frame_line_t *inlined; /* functions inlined at the address,
                                innermost first, each at its own line;
                                `function` called the last of them */
  size_t ninlined;           /* entries in inlined[] */
  const char *module;        /* basename of the ELF file ("libc.so.6"), or
                                "" when in no module */
  const char *module_path;   /* its path as mapped, or "" */
  const char *build_id;      /* its GNU build id in hex, or "" */
  uintptr_t map_start;       /* the module's segment holding the address,
                                as /proc/PID/maps shows it: its start, */
  uintptr_t map_end;         /* its end, */
  uint64_t map_offset;       /* and its offset in the file; all 0 when in
                                no module */
  uint64_t module_offset;    /* the address in the ELF file's own address
                                space (what addr2line -e takes); 0 when
                                in no module */
} srv_frame_t;

/* How the symbolizer has fared since it was opened. */
typedef struct srv_symbols_stats {
  uint64_t lookups;      /* calls to srv_symbols_lookup */
  uint64_t hits;         /* answered from the cache */
  uint64_t refreshes;    /* times the maps were read again on a miss */
  uint64_t entries;      /* addresses cached */
  uint64_t cache_bytes;  /* malloc'd for the cache (not libdw's own) */
} srv_symbols_stats_t;

/* Open a symbolizer for process pid (0: this one, and after a fork the
 * child, whose own maps are read on its misses), reading its maps now;
 * SRV_ENOENT if the process is gone, SRV_EACCES if its maps may not be
 * read, SRV_ENOMEM, SRV_EIO for anything else libdw refuses. */
int srv_symbols_open(pid_t pid, srv_symbols_t **out);
/* Close it and free every frame's strings (NULL is a no-op). */
void srv_symbols_close(srv_symbols_t *s);
/* Resolve addr (flags: SRV_SYMBOLS_RETURN or 0) into *out. Always fills a
 * frame, an unknown one at worst: SRV_OK, or SRV_ENOMEM when the frame
 * could not be cached (it is then the unknown frame). */
int srv_symbols_lookup(srv_symbols_t *s, uintptr_t addr, unsigned flags,
                       srv_frame_t *out);
/* The counters so far. */
void srv_symbols_stats(srv_symbols_t *s, srv_symbols_stats_t *out);

#endif /* SRV_SYMBOLS_H */

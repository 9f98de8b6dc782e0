/* vg.h - valgrind client requests, or nothing when valgrind's headers are
 * missing. Callers also test lab__vg so a normal run skips them. */
#ifndef LAB_VG_H
#define LAB_VG_H

#ifdef LAB_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
/* Under memcheck, the one tool that answers its requests (with -1). */
static inline int LAB__RUNNING_ON_MEMCHECK(void) {
  unsigned char probe = 0;
  return RUNNING_ON_VALGRIND && (long)VALGRIND_MAKE_MEM_DEFINED(&probe, 1) == -1;
}
#else
#define LAB__RUNNING_ON_MEMCHECK() 0
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_MALLOCLIKE_BLOCK(p, n, rz, zeroed) ((void)0)
#define VALGRIND_FREELIKE_BLOCK(p, rz) ((void)0)
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)0)
#define VALGRIND_MAKE_MEM_UNDEFINED(p, n) ((void)0)
#define VALGRIND_MAKE_MEM_NOACCESS(p, n) ((void)0)
#endif

#endif /* LAB_VG_H */

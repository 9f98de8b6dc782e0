/* deliberate.h - mark the test's own deliberate memory errors so memcheck,
 * which understands the lab heap's blocks, does not count them. */
#ifndef LAB_TEST_DELIBERATE_H
#define LAB_TEST_DELIBERATE_H

#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
/* A copy of uninitialised bytes that memcheck should treat as known. */
#define KNOWN(var) VALGRIND_MAKE_MEM_DEFINED(&(var), sizeof(var))
#define DELIBERATE(stmt)                                                     \
  do {                                                                       \
    VALGRIND_DISABLE_ERROR_REPORTING;                                        \
    stmt;                                                                    \
    VALGRIND_ENABLE_ERROR_REPORTING;                                         \
  } while (0)
#else
#define KNOWN(var) ((void)0)
#define DELIBERATE(stmt)                                                     \
  do {                                                                       \
    stmt;                                                                    \
  } while (0)
#endif

#endif

/* err.h - the server's error codes: 0 is success, named negative codes,
 * errno-compatible, declared once with their messages. */
#ifndef SRV_ERR_H
#define SRV_ERR_H

#include <errno.h>

#define SRV_ERRNO_MAP(X)                                                     \
  X(EINVAL, -EINVAL, "invalid value")                                        \
  X(ENOENT, -ENOENT, "no such name")                                         \
  X(ERANGE, -ERANGE, "value out of range")                                   \
  X(ENOMEM, -ENOMEM, "out of memory")                                        \
  X(E2BIG, -E2BIG, "too large")                                              \
  X(EACCES, -EACCES, "not allowed")                                          \
  X(EBUSY, -EBUSY, "busy")                                                   \
  X(EIO, -EIO, "input/output error")

typedef enum srv_err {
  SRV_OK = 0,
#define SRV__ERR_ENUM(name, value, msg) SRV_##name = (value),
  SRV_ERRNO_MAP(SRV__ERR_ENUM)
#undef SRV__ERR_ENUM
} srv_err_t;

/* Message for an srv_err_t (or "unknown error"). */
const char *srv_strerror(int err);

#endif /* SRV_ERR_H */

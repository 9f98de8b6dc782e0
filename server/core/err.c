/* err.c - messages of the server's error codes. */
#include "core/err.h"

const char *srv_strerror(int err) {
  switch (err) {
  case SRV_OK: return "success";
#define SRV__ERR_MSG(name, value, msg) case SRV_##name: return msg;
    SRV_ERRNO_MAP(SRV__ERR_MSG)
#undef SRV__ERR_MSG
  }
  return "unknown error";
}

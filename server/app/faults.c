/* faults.c - the faults as flags. */
#include "app/faults.h"

#include "observe/flags.h"

static const srv_flag_def_t srv__defs[SRV_FAULT_COUNT] = {
#define SRV__FAULT_DEF(id, name, desc, mistake)                              \
  {name, SRV_FLAG_RATE, 0, desc, mistake},
    SRV_FAULT_MAP(SRV__FAULT_DEF)
#undef SRV__FAULT_DEF
};

static srv_flag_t srv__first = -1;

int srv_faults_register(void) {
  return srv_flags_register(srv__defs, SRV_FAULT_COUNT, &srv__first);
}

bool srv_faults_hit(srv_fault_t f) {
  return srv__first >= 0 && srv_flags_hit(srv__first + (int)f);
}

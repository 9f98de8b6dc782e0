/* clock.h - the two clocks the server reads: wall time for what users see,
 * monotonic time for durations. */
#ifndef SRV_CLOCK_H
#define SRV_CLOCK_H

#include <stdint.h>

/* Wall clock, unix ns. */
uint64_t srv_clock_now_ns(void);
/* Wall clock, unix ms. */
uint64_t srv_clock_now_ms(void);
/* Monotonic clock, ns. */
uint64_t srv_clock_mono_ns(void);

#endif /* SRV_CLOCK_H */

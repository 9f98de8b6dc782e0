/* proc.h - what the kernel says about this process, from /proc, and the
 * clocks. */
#ifndef SRV_PROC_H
#define SRV_PROC_H

#include <stdint.h>

typedef struct srv_proc_info {
  uint64_t rss_bytes;       /* resident set size */
  uint64_t vm_bytes;        /* virtual memory size */
  double cpu_seconds;       /* user + system CPU time */
  double start_time_s;      /* process start, unix seconds */
  uint64_t open_fds;        /* open file descriptors */
  uint64_t max_fds;         /* soft limit on them */
} srv_proc_info_t;

/* RSS and virtual size from /proc/self/statm; SRV_EIO if unreadable. */
int srv_proc_mem(uint64_t *rss_bytes, uint64_t *vm_bytes);
/* The same for process pid (pid <= 0: this one). */
int srv_proc_mem_of(int pid, uint64_t *rss_bytes, uint64_t *vm_bytes);
/* User + system CPU time of the process, in seconds. */
double srv_proc_cpu_seconds(void);
/* Everything above plus start time and file descriptors (slower). */
int srv_proc_info(srv_proc_info_t *out);
/* Wall clock, unix ms. */
uint64_t srv_proc_now_ms(void);
/* Monotonic clock, ns. */
uint64_t srv_proc_mono_ns(void);

#endif /* SRV_PROC_H */

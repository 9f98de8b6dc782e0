/* procfs.h - what the kernel says about a process, read from /proc and
 * getrusage. */
#ifndef SRV_PROCFS_H
#define SRV_PROCFS_H

#include <stdint.h>

typedef struct srv_procfs_info {
  uint64_t rss_bytes;       /* resident set size */
  uint64_t vm_bytes;        /* virtual memory size */
  double cpu_seconds;       /* user + system CPU time */
  double start_time_s;      /* process start, unix seconds */
  uint64_t open_fds;        /* open file descriptors */
  uint64_t max_fds;         /* soft limit on them */
} srv_procfs_info_t;

/* RSS and virtual size from /proc/self/statm; SRV_EIO if unreadable. */
int srv_procfs_mem(uint64_t *rss_bytes, uint64_t *vm_bytes);
/* The same for process pid (pid <= 0: this one). */
int srv_procfs_mem_of(int pid, uint64_t *rss_bytes, uint64_t *vm_bytes);
/* User + system CPU time of this process, in seconds. */
double srv_procfs_cpu_seconds(void);
/* Everything above plus start time and file descriptors (slower). */
int srv_procfs_info(srv_procfs_info_t *out);

#endif /* SRV_PROCFS_H */

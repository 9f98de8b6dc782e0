/* procfs.c - /proc readings. */
#define _GNU_SOURCE
#include "core/procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/err.h"

/* Read a small /proc file into buf (NUL-terminated); bytes read or -1. */
static ssize_t srv__procfs_read(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  return n;
}

int srv_procfs_mem(uint64_t *rss_bytes, uint64_t *vm_bytes) {
  return srv_procfs_mem_of(0, rss_bytes, vm_bytes);
}

int srv_procfs_mem_of(int pid, uint64_t *rss_bytes, uint64_t *vm_bytes) {
  char buf[256], path[64];
  unsigned long long size, resident;
  if (pid > 0) snprintf(path, sizeof path, "/proc/%d/statm", pid);
  else snprintf(path, sizeof path, "/proc/self/statm");
  if (srv__procfs_read(path, buf, sizeof buf) < 0 ||
      sscanf(buf, "%llu %llu", &size, &resident) != 2)
    return SRV_EIO;
  uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  if (rss_bytes) *rss_bytes = resident * page;
  if (vm_bytes) *vm_bytes = size * page;
  return SRV_OK;
}

double srv_procfs_cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru)) return 0;
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Process start in unix seconds: starttime (field 22 of /proc/self/stat,
 * in clock ticks since boot) plus btime from /proc/stat. */
static double srv__start_time;
static pthread_once_t srv__start_once = PTHREAD_ONCE_INIT;

static void srv__proc_start_time(void) {
  char buf[4096];
  if (srv__procfs_read("/proc/self/stat", buf, sizeof buf) < 0) return;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  if (!p) return;
  unsigned long long start = 0;
  int field = 2;
  char *save = NULL;
  for (char *tok = strtok_r(p + 1, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save)) {
    if (++field == 22) {
      start = strtoull(tok, NULL, 10);
      break;
    }
  }
  FILE *f = fopen("/proc/stat", "re");
  if (!f) return;
  char *line = NULL;
  size_t cap = 0;
  double btime = 0;
  while (getline(&line, &cap, f) > 0)
    if (!strncmp(line, "btime ", 6)) {
      btime = strtod(line + 6, NULL);
      break;
    }
  free(line);
  fclose(f);
  srv__start_time = btime + (double)start / (double)sysconf(_SC_CLK_TCK);
}

int srv_procfs_info(srv_procfs_info_t *out) {
  memset(out, 0, sizeof *out);
  int err = srv_procfs_mem(&out->rss_bytes, &out->vm_bytes);
  out->cpu_seconds = srv_procfs_cpu_seconds();
  pthread_once(&srv__start_once, srv__proc_start_time);
  out->start_time_s = srv__start_time;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (e->d_name[0] != '.') out->open_fds++;
    closedir(d);
    if (out->open_fds) out->open_fds--; /* the directory stream itself */
  }
  struct rlimit rl;
  if (!getrlimit(RLIMIT_NOFILE, &rl)) out->max_fds = (uint64_t)rl.rlim_cur;
  return err;
}

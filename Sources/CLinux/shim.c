#include <sched.h>
#include <unistd.h>
#include "CLinux.h"

int clinux_setns(int fd, int nstype) { return setns(fd, nstype); }
int clinux_unshare(int flags) { return unshare(flags); }
char *const *clinux_environ(void) { return environ; }
pid_t clinux_gettid(void) { return gettid(); }
int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

#include <sys/vfs.h>
long clinux_fs_magic(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -1;
    return (long)fs.f_type;
}

#include <errno.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>
#include "CLinux.h"

int clinux_setns(int fd, int nstype) { return setns(fd, nstype); }
int clinux_unshare(int flags) { return unshare(flags); }
char *const *clinux_environ(void) { return environ; }
pid_t clinux_gettid(void) { return gettid(); }
int clinux_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

ssize_t clinux_netlink_recv_from_kernel(int fd, void *buf, size_t len, int flags) {
    for (;;) {
        struct sockaddr_nl from;
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
        memset(&from, 0, sizeof from);
        ssize_t n = recvmsg(fd, &msg, flags);
        if (n < 0) return n;
        if (msg.msg_flags & MSG_TRUNC) {
            errno = ENOSPC;
            return -1;
        }
        if (msg.msg_namelen == sizeof from && from.nl_family == AF_NETLINK && from.nl_pid == 0) return n;
    }
}

#include <sys/vfs.h>
long clinux_fs_magic(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -1;
    return (long)fs.f_type;
}

#include <fcntl.h>
#include <stdio.h>
int clinux_open_tmpfile(const char *dir, mode_t mode) { return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode); }
int clinux_link_fd(int fd, const char *path) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

#include <sys/ioctl.h>
#include <linux/nsfs.h>
int clinux_ns_type(int fd) { return ioctl(fd, NS_GET_NSTYPE); }

_Static_assert(sizeof(struct clinux_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
int clinux_recvmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)msgs, n, flags, NULL);
}
int clinux_sendmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)msgs, n, flags);
}

#include <signal.h>
#include <errno.h>

static int clinux_stop_fd = -1;

static void clinux_stop_handler(int sig) {
    int saved = errno;
    char b = (char)sig;
    ssize_t r = write(clinux_stop_fd, &b, 1);
    (void)r;
    errno = saved;
}

int clinux_stop_signal_pipe(void) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    clinux_stop_fd = p[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = clinux_stop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) return -1;
    return p[0];
}

int clinux_tap_create(const char *name, int multi_queue, long long owner, long long group, int *step) {
    struct ifreq ifr;
    int fd, err;
    *step = 1;
    fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -errno;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
    *step = 2;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) goto fail;
    *step = 3;
    if (owner >= 0 && ioctl(fd, TUNSETOWNER, (unsigned long)owner) < 0) goto fail;
    *step = 4;
    if (group >= 0 && ioctl(fd, TUNSETGROUP, (unsigned long)group) < 0) goto fail;
    *step = 5;
    if (ioctl(fd, TUNSETPERSIST, 1UL) < 0) goto fail;
    close(fd);
    return 0;
fail:
    err = errno;
    close(fd);  /* not persistent yet: the device goes with the file */
    return -err;
}

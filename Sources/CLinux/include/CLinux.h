#ifndef SWIFT_CNI_CLINUX_H
#define SWIFT_CNI_CLINUX_H
// Kernel headers and the few libc entry points that glibc only declares under _GNU_SOURCE.
// The wrappers are compiled in shim.c with _GNU_SOURCE; Swift sees only these prototypes.
#include <stdint.h>
#include <sys/types.h>
/* glibc first, so the kernel headers leave the shared structs to it (linux/libc-compat.h). */
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_tun.h>
#include <linux/veth.h>
#include <linux/if_bridge.h>
#include <linux/pkt_sched.h>
#include <linux/pkt_cls.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>

/// The corresponding C constant is `CLONE_NEWNET`.
static const int CLINUX_CLONE_NEWNET = 0x40000000;

/// `setns(2)`: move the calling thread into the namespace `fd` refers to.
int clinux_setns(int fd, int nstype);
/// `unshare(2)`.
int clinux_unshare(int flags);
/// The process environment (`environ`), NULL-terminated.
char *const *clinux_environ(void);
/// `gettid(2)`: the calling thread's id.
pid_t clinux_gettid(void);

/// `pipe2(2)`.
int clinux_pipe2(int fds[2], int flags);

/// SIGTERM and SIGINT write their number to a pipe (the handler does nothing else, in C, so it is
/// async-signal-safe whatever thread takes the signal); returns the pipe's read end, -1 on error.
/// For daemons with threads they do not create themselves (an async main, NIO).
int clinux_stop_signal_pipe(void);

/// Receives one datagram sent by the kernel on netlink socket `fd` (recvmsg with `flags`):
/// datagrams from any other sender (another process writing to our port id, which netlink lets
/// any local process do) are read and dropped, so a forged reply is never taken for the
/// kernel's. A datagram longer than `len` fails with ENOSPC. Returns its length, or -1 with errno.
ssize_t clinux_netlink_recv_from_kernel(int fd, void *buf, size_t len, int flags);

/// The filesystem magic of the file `fd` refers to (`fstatfs(2)` f_type), or -1 with errno set.
long clinux_fs_magic(int fd);

/// An unnamed file in directory `dir` (`O_TMPFILE | O_WRONLY`), or -1 with errno set
/// (EOPNOTSUPP/EISDIR where the filesystem has no O_TMPFILE).
int clinux_open_tmpfile(const char *dir, mode_t mode);
/// Gives the unnamed file `fd` the name `path` (`linkat` through /proc/self/fd); fails with EEXIST
/// when `path` exists.
int clinux_link_fd(int fd, const char *path);
/// The namespace type (`CLONE_NEW*`) of the nsfs file `fd` (`ioctl NS_GET_NSTYPE`), or -1 with
/// errno set (ENOTTY: not a namespace file, or a kernel before 4.11).
int clinux_ns_type(int fd);
/// Makes the persistent tap device `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, with
/// IFF_MULTI_QUEUE when `multi_queue`) in the network namespace of the calling thread, through
/// /dev/net/tun: TUNSETIFF, TUNSETOWNER when `owner` >= 0, TUNSETGROUP when `group` >= 0,
/// TUNSETPERSIST; the file is closed before it returns (the device stays). Returns 0, or -errno
/// of the step that failed with that step's number in `*step` (1 open, 2 TUNSETIFF, 3 owner,
/// 4 group, 5 persist); a device made before a later step failed is deleted again.
int clinux_tap_create(const char *name, int multi_queue, long long owner, long long group, int *step);
/// `struct mmsghdr` (declared by glibc only under _GNU_SOURCE), for the batched datagram calls.
struct clinux_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
/// `recvmmsg(2)` and `sendmmsg(2)` (no timeout).
int clinux_recvmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags);
int clinux_sendmmsg(int fd, struct clinux_mmsghdr *msgs, unsigned int n, int flags);

#endif

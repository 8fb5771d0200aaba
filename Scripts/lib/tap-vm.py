"""A virtual machine's side of a tap: opens /dev/net/tun (as root: a VMM is handed the device
file), becomes user UID, group GID with no other groups and no capabilities, then attaches to
the persistent tap device NAME as a VMM does and waits for a frame from the container's kernel.

    tap-vm.py NAME MULTIQUEUE(0|1) WANT-IP TIMEOUT-SECONDS UID GID

Prints "attached" once attached (the tap has its carrier then), then, for the first ARP request
that asks for WANT-IP, "arp <sender MAC> <sender IP>", and exits 0; exit 1 on a timeout, 2 when
the kernel refuses the attach (the errno's name on stderr)."""
import errno
import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_MULTI_QUEUE = 0x0002, 0x1000, 0x0100


def main():
    name, mq, want, timeout = sys.argv[1], sys.argv[2] == "1", sys.argv[3], float(sys.argv[4])
    uid, gid = int(sys.argv[5]), int(sys.argv[6])
    fd = os.open("/dev/net/tun", os.O_RDWR)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # a uid other than 0 loses every capability
    flags = IFF_TAP | IFF_NO_PI | (IFF_MULTI_QUEUE if mq else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), file=sys.stderr)
        return 2
    print("attached", flush=True)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        frame = os.read(fd, 65536)
        if len(frame) < 42 or frame[12:14] != b"\x08\x06":
            continue  # not ARP (IPv6 neighbour discovery, say)
        op = struct.unpack("!H", frame[20:22])[0]
        target = socket.inet_ntoa(frame[38:42])
        if op == 1 and target == want:
            print("arp %s %s" % (":".join("%02x" % b for b in frame[22:28]), socket.inet_ntoa(frame[28:32])), flush=True)
            return 0
    return 1


sys.exit(main())

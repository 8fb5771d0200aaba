#!/usr/bin/python3
"""Tiny TCP/UDP test peers for the end-to-end scripts (no socat or nc on the machine).

  netcheck.py serve tcp|udp PORT NAME   answers every connection/datagram with "NAME <peer address>"
  netcheck.py ask tcp|udp HOST PORT [SRCPORT]
                                        prints the answer (exit 1 after a 2 s timeout)
"""
import socket
import sys


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(proto, port, name):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    if proto == "tcp":
        s.listen(64)
        while True:
            c, peer = s.accept()
            with c:
                c.sendall(f"{name} {peer[0].removeprefix('::ffff:')}\n".encode())
    else:
        while True:
            _, peer = s.recvfrom(2048)
            s.sendto(f"{name} {peer[0].removeprefix('::ffff:')}\n".encode(), peer)


def ask(proto, host, port, source_port=0):
    s = socket.socket(family(host), socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(2)
    if source_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if ":" in host else "0.0.0.0", source_port))
    try:
        if proto == "tcp":
            s.connect((host, port))
            data = s.recv(2048)
        else:
            s.sendto(b"hello", (host, port))
            data, _ = s.recvfrom(2048)
    except OSError as e:
        print(f"no answer: {e}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write(data.decode())


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        ask(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0)

#!/usr/bin/python3
"""TCP behaviour probes against a DNS server (RFC 7766), for the e2e scripts.

  dns-tcp.py pipeline SERVER NAME...   sends one query per NAME back to back on one connection,
                                       prints the number of answers read (each a response)
  dns-tcp.py zero SERVER               sends a zero-length message; prints "closed" if the server
                                       closes the connection, "open" otherwise
  dns-tcp.py burst SERVER NAME COUNT   sends COUNT UDP queries at once from one socket, prints how
                                       many were answered within a second (the rate limit's probe)
"""
import socket
import struct
import sys


def query(qid, name):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


def conn(server):
    s = socket.create_connection((server, 53), timeout=3)
    return s


def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


if sys.argv[1] == "burst":
    u = socket.socket(socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    count = int(sys.argv[4])
    for i in range(count):
        u.sendto(query(i & 0xFFFF, sys.argv[3]), (sys.argv[2], 53))
    u.settimeout(1)
    answered = 0
    try:
        while answered < count:
            u.recv(2048)
            answered += 1
    except socket.timeout:
        pass
    print(answered)
    sys.exit(0)

if sys.argv[1] == "pipeline":
    s = conn(sys.argv[2])
    names = sys.argv[3:]
    s.sendall(b"".join(struct.pack(">H", len(m)) + m for m in (query(i + 1, n) for i, n in enumerate(names))))
    got = set()
    try:
        for _ in names:
            (n,) = struct.unpack(">H", read_exact(s, 2))
            m = read_exact(s, n)
            if m[2] & 0x80:
                got.add(struct.unpack(">H", m[:2])[0])
    except (EOFError, OSError):
        pass
    print(len(got))
else:
    s = conn(sys.argv[2])
    s.sendall(b"\x00\x00")
    try:
        print("closed" if s.recv(10) == b"" else "open")
    except socket.timeout:
        print("open")
    except OSError:
        print("closed")

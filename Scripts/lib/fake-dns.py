#!/usr/bin/python3
"""A fake upstream DNS server for the e2e scripts: answers every A query with ADDRESS (TTL 60)
and appends each query name to LOG, so a test can tell what was forwarded.

  fake-dns.py BIND_ADDRESS ADDRESS LOG
"""
import socket
import sys

bind, answer, log = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((bind, 53))
while True:
    q, peer = s.recvfrom(2048)
    if len(q) < 12:
        continue
    i, labels = 12, []
    while i < len(q) and q[i] != 0:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
        i += 1 + q[i]
    question = q[12:i + 5]
    with open(log, "a") as f:
        f.write(".".join(labels) + "\n")
    qtype = int.from_bytes(q[i + 1:i + 3], "big")
    header = q[:2] + b"\x81\x80" + b"\x00\x01" + (b"\x00\x01" if qtype == 1 else b"\x00\x00") + b"\x00\x00\x00\x00"
    rr = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(answer) if qtype == 1 else b""
    s.sendto(header + question + rr, peer)

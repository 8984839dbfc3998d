"""Bulk TCP upload with an end-to-end check, for the MTU tests.

usage: upload.py sink PORT          per connection (IPv4 or IPv6): read to EOF,
                                    answer "BYTES SHA256" and close (prints "ready"
                                    first)
       upload.py send HOST PORT BYTES
                                    send BYTES deterministic bytes, half-close, print
                                    the sink's answer and the expected one as JSON
"""
import hashlib
import json
import socket
import sys


def pattern(n):
    block = bytes(range(256)) * 256
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


def sink(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        conn.settimeout(60)
        digest, total = hashlib.sha256(), 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
        conn.sendall(b"%d %s" % (total, digest.hexdigest().encode()))
        conn.close()


def send(host, port, n):
    data = pattern(n)
    c = socket.create_connection((host, port), timeout=60)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        chunk = c.recv(4096)
        if not chunk:
            break
        answer += chunk
    expected = "%d %s" % (n, hashlib.sha256(data).hexdigest())
    print(json.dumps({"answer": answer.decode(), "expected": expected}))


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(int(sys.argv[2]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))

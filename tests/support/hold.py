"""Long-lived TCP connections through a VIP, for reload tests.

usage: hold.py VIP PORT COUNT SOURCE[,SOURCE...]
Opens COUNT connections, says "HOLD" on each and prints one JSON line: the backend
name each answered with. Then, for every line read on stdin, sends a line on every
connection and prints the names again (null where a connection broke).
"""
import json
import socket
import sys


def ask(conn):
    try:
        conn.sendall(b"HOLD again\n")
        data = conn.recv(4096)
        return data.decode().strip() or None
    except OSError:
        return None


def main():
    vip, port, count, sources = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    conns = []
    for i in range(count):
        conn = socket.socket(family, socket.SOCK_STREAM)
        conn.settimeout(5)
        conn.bind((sources[i % len(sources)], 0))
        conn.connect((vip, port))
        conns.append(conn)
    print(json.dumps([ask(c) for c in conns]), flush=True)
    for _ in sys.stdin:
        print(json.dumps([ask(c) for c in conns]), flush=True)


if __name__ == "__main__":
    main()

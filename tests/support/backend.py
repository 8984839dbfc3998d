"""A lab backend: answers TCP (HTTP-like) and UDP with its own name.

usage: backend.py NAME [TCP_PORT ...] -- [UDP_PORT ...]
Each TCP connection reads a request and answers "HTTP/1.0 200 OK ... NAME" then
closes; each UDP datagram is answered with NAME to its sender. Binds IPv4 and
IPv6 wildcard addresses so VIPs on lo and the node's own address both work.
"""
import socket
import sys
import threading


def serve_tcp(name, port, family):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    s.listen(512)
    body = name.encode()
    while True:
        conn, _ = s.accept()
        threading.Thread(target=answer, args=(conn, body), daemon=True).start()


def answer(conn, body):
    """One request -> one response, then close; or, after "HOLD", one name per line
    until the client closes (a long-lived connection for reload tests)."""
    try:
        conn.settimeout(30)
        request = conn.recv(4096)
        if request.startswith(b"HOLD"):
            while request:
                conn.sendall(body + b"\n")
                request = conn.recv(4096)
            return
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass
    finally:
        conn.close()


def serve_udp(name, port, family):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(name.encode(), peer)


def main():
    name = sys.argv[1]
    args = sys.argv[2:]
    split = args.index("--") if "--" in args else len(args)
    tcp_ports = [int(p) for p in args[:split]]
    udp_ports = [int(p) for p in args[split + 1:]]
    threads = []
    for port in tcp_ports:
        for family in (socket.AF_INET, socket.AF_INET6):
            threads.append(threading.Thread(target=serve_tcp, args=(name, port, family), daemon=True))
    for port in udp_ports:
        for family in (socket.AF_INET, socket.AF_INET6):
            threads.append(threading.Thread(target=serve_udp, args=(name, port, family), daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()

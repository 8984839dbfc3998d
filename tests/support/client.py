"""A lab client: many TCP connections or UDP exchanges to a VIP, from several source
addresses, printing a JSON summary {"answers": {backend: count}, "failed": n}.

usage: client.py tcp|udp VIP PORT COUNT SOURCE[,SOURCE...] [--timeout S]
Each TCP connection sends a request and reads the backend's name until close; each
UDP exchange sends one datagram from a fresh socket and reads one answer.
"""
import json
import socket
import sys


def one_tcp(vip, port, source, timeout):
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect((vip, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200"):
        raise OSError("bad answer %r" % data[:40])
    return body.decode()


def one_udp(vip, port, source, timeout):
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.sendto(b"ping", (vip, port))
        data, _ = s.recvfrom(2048)
        return data.decode()


def main():
    proto, vip, port, count, sources = sys.argv[1:6]
    timeout = float(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--timeout" else 5.0
    sources = sources.split(",")
    one = one_tcp if proto == "tcp" else one_udp
    answers, failed, errors = {}, 0, []
    for i in range(int(count)):
        try:
            name = one(vip, int(port), sources[i % len(sources)], timeout)
            answers[name] = answers.get(name, 0) + 1
        except OSError as e:
            failed += 1
            if len(errors) < 3:
                errors.append(str(e))
    print(json.dumps({"answers": answers, "failed": failed, "errors": errors}))


if __name__ == "__main__":
    main()

"""Long-lived TCP transfers through the cluster lab, counting the ones that break.

usage: streams.py VIP PORT COUNT SECONDS SOURCES

Opens COUNT connections to VIP:PORT from the comma-separated SOURCES (round robin),
puts each in the lab backend's HOLD mode (tests/support/backend.py answers every
chunk it receives with its name), then keeps sending 4 KiB every 20 ms on each for
SECONDS. Once every connection is open it prints one line, `ready` and a JSON list of
the [source, port] pairs; at the end one JSON object: per connection its source,
port, backend and, if it broke, why. A connection breaks on a reset, on an answer
from another backend, or when no answer came for STALL seconds.
"""
import json
import socket
import sys
import threading
import time

STALL = 8.0
CHUNK = b"x" * 4095 + b"\n"


def run(conn, deadline, result):
    try:
        conn.settimeout(STALL)
        buffered = b""
        while time.monotonic() < deadline:
            conn.sendall(CHUNK)
            got = conn.recv(65536)
            if not got:
                raise OSError("closed by the peer")
            buffered += got
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                name = line.decode()
                if name != result["backend"]:
                    raise OSError(f"answer from {name}, not {result['backend']}")
            time.sleep(0.02)
    except OSError as e:  # socket.timeout is an OSError
        result["broken"] = f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def main():
    vip, port, count, seconds, sources = sys.argv[1:6]
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    sources = sources.split(",")
    conns, results = [], []
    for i in range(int(count)):
        conn = socket.socket(family, socket.SOCK_STREAM)
        conn.bind((sources[i % len(sources)], 0))
        conn.settimeout(5)
        conn.connect((vip, int(port)))
        conn.sendall(b"HOLD\n")
        first = b""
        while not first.endswith(b"\n"):
            chunk = conn.recv(256)
            if not chunk:
                raise SystemExit("a backend closed a new connection")
            first += chunk
        local = conn.getsockname()
        conns.append(conn)
        results.append({
            "source": local[0],
            "port": local[1],
            "backend": first.split(b"\n")[0].decode(),
            "broken": None,
        })
    print("ready", json.dumps([[r["source"], r["port"]] for r in results]), flush=True)
    deadline = time.monotonic() + float(seconds)
    threads = [
        threading.Thread(target=run, args=(c, deadline, r)) for c, r in zip(conns, results)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()

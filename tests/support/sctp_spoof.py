"""Spoofed SCTP for tests/sctp_e2e.rs: packets no real stack would send towards a VIP.

usage: sctp_spoof.py [--wait] IFACE DST_MAC STEP [STEP ...]
A STEP is comma-separated. Every kind tests/support/sctp_peer.py knows (init, cookie,
data, heartbeat, asconf, abort, shutdown-complete) is sent as it sends it, plus:
  init-ack,SRC,SPORT,DST,DPORT,VTAG[,INIT_TAG]
             INIT-ACK under VTAG, as a client would answer an association a backend
             started (INIT_TAG: the initiate tag it carries, default 0x1badcafe)
  flood,COUNT,SECONDS,CIDR,DST,DPORT[,EXCLUDE...]
             COUNT INITs from random addresses of CIDR (none inside an EXCLUDE
             CIDR), random source ports and initiate tags, spread evenly over
             SECONDS (0: as fast as the socket takes them)
Frames leave IFACE towards DST_MAC (xlb's MAC); scapy fills in the CRC32c. Every frame
is built before the first is sent (building 4000 takes seconds): then "ready" is
printed and, with --wait, a line read from stdin before sending starts; "sending" as
it starts, and at the end one JSON line: {"sent": FRAMES, "seconds": SECONDS}.
"""
import ipaddress
import json
import random
import sys
import time

from scapy.all import Ether, conf
from scapy.layers.sctp import SCTP, SCTPChunkInit, SCTPChunkInitAck, SCTPChunkParamStateCookie

from sctp_peer import build, ip_layer

conf.verb = 0


def init_ack(step):
    _, src, sport, dst, dport, vtag, *extra = step.split(",")
    init_tag = int(extra[0], 0) if extra else 0x1BADCAFE
    chunk = SCTPChunkInitAck(init_tag=init_tag, a_rwnd=65535, n_out_streams=2, n_in_streams=2,
                             init_tsn=1, params=[SCTPChunkParamStateCookie(cookie=b"xlb-lab-cookie!!")])
    return ip_layer(src, dst) / SCTP(sport=int(sport), dport=int(dport), tag=int(vtag, 0)) / chunk


def flood_frames(dst_mac, step):
    _, count, seconds, cidr, dst, dport, *exclude = step.split(",")
    net = ipaddress.ip_network(cidr)
    excluded = [ipaddress.ip_network(e) for e in exclude]
    frames = []
    while len(frames) < int(count):
        src = net[random.randrange(net.num_addresses)]
        if any(src in e for e in excluded):
            continue
        packet = ip_layer(str(src), dst) / SCTP(sport=random.randrange(1024, 65536), dport=int(dport), tag=0) / \
            SCTPChunkInit(init_tag=random.randrange(1, 1 << 32), a_rwnd=65535, n_out_streams=2,
                          n_in_streams=2, init_tsn=random.randrange(1 << 32))
        frames.append(bytes(Ether(dst=dst_mac) / packet))
    return frames, float(seconds)


def main():
    args = sys.argv[1:]
    wait = args[:1] == ["--wait"]
    iface, dst_mac, *steps = args[1:] if wait else args
    batches = []  # (frames, seconds to spread them over)
    for step in steps:
        kind = step.split(",", 1)[0]
        if kind == "flood":
            batches.append(flood_frames(dst_mac, step))
        elif kind == "init-ack":
            batches.append(([bytes(Ether(dst=dst_mac) / init_ack(step))], 0))
        else:
            batches.append(([bytes(Ether(dst=dst_mac) / build(step))], 0))
    sock = conf.L2socket(iface=iface)
    print("ready", flush=True)
    if wait:
        sys.stdin.readline()
    print("sending", flush=True)
    start = time.monotonic()
    sent = 0
    for frames, seconds in batches:
        begin = time.monotonic()
        for i, frame in enumerate(frames):
            if seconds:
                delay = begin + seconds * i / len(frames) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sock.send(frame)
            sent += 1
    seconds = time.monotonic() - start
    sock.close()
    print(json.dumps({"sent": sent, "seconds": round(seconds, 3)}), flush=True)


if __name__ == "__main__":
    main()

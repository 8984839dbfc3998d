"""Sends SCTP packets made with scapy (the kernel here has no SCTP stack).

usage: sctp_peer.py IFACE DST_MAC STEP [STEP ...]
A STEP is comma-separated: KIND,SRC,SPORT,DST,DPORT,VTAG[,EXTRA...]
  init       VTAG is the client's initiate tag (the packet's vtag is 0); EXTRA are
             additional client addresses (IPv4 or IPv6 address parameters)
  cookie     COOKIE-ECHO under the backend's tag VTAG
  data       DATA under VTAG (EXTRA: payload text)
  heartbeat  HEARTBEAT under VTAG
  asconf     ASCONF under VTAG: EXTRA is add:ADDR, del:ADDR or primary:ADDR
  abort      ABORT under VTAG; EXTRA "t" sets the T bit
  shutdown-complete  SHUTDOWN-COMPLETE under VTAG; EXTRA "t" sets the T bit
Frames leave IFACE towards DST_MAC (xlb's MAC); scapy fills in the CRC32c.
"""
import sys

from scapy.all import Ether, IP, IPv6, conf, sendp
from scapy.layers.sctp import (
    SCTP,
    SCTPChunkAbort,
    SCTPChunkCookieEcho,
    SCTPChunkData,
    SCTPChunkHeartbeatReq,
    SCTPChunkInit,
    SCTPChunkParamHeartbeatInfo,
    SCTPChunkParamIPv4Addr,
    SCTPChunkParamIPv6Addr,
    SCTPChunkShutdownComplete,
)

conf.verb = 0


def ip_layer(src, dst):
    return IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)


def addr_param(addr):
    if ":" in addr:
        return SCTPChunkParamIPv6Addr(addr=addr)
    return SCTPChunkParamIPv4Addr(addr=addr)


def asconf_chunk(src, request):
    """ASCONF (RFC 5061 §4.1.1): serial, the sender's address, one request."""
    import struct
    import socket

    kind, addr = request.split(":", 1)
    req_type = {"add": 0xC001, "del": 0xC002, "primary": 0xC004}[kind]

    def param(a):
        if ":" in a:
            return struct.pack("!HH", 6, 20) + socket.inet_pton(socket.AF_INET6, a)
        return struct.pack("!HH", 5, 8) + socket.inet_pton(socket.AF_INET, a)

    address = param(addr)
    request_param = struct.pack("!HHI", req_type, 8 + len(address), 1) + address
    body = struct.pack("!I", 1) + param(src) + request_param
    return struct.pack("!BBH", 0xC1, 0, 4 + len(body)) + body


def build(step):
    kind, src, sport, dst, dport, vtag, *extra = step.split(",")
    sport, dport, vtag = int(sport), int(dport), int(vtag, 0)
    ip = ip_layer(src, dst)
    if kind == "init":
        params = [addr_param(a) for a in extra]
        chunk = SCTPChunkInit(init_tag=vtag, a_rwnd=65535, n_out_streams=2, n_in_streams=2,
                              init_tsn=1, params=params)
        return ip / SCTP(sport=sport, dport=dport, tag=0) / chunk
    if kind == "cookie":
        return ip / SCTP(sport=sport, dport=dport, tag=vtag) / SCTPChunkCookieEcho(cookie=b"xlb-lab-cookie!!")
    if kind == "data":
        payload = (extra[0] if extra else "hello").encode()
        return ip / SCTP(sport=sport, dport=dport, tag=vtag) / SCTPChunkData(tsn=1, stream_id=0, proto_id=60, beginning=1, ending=1, data=payload)
    if kind == "heartbeat":
        info = SCTPChunkParamHeartbeatInfo(data=b"xlb-lab-heartbeat")
        return ip / SCTP(sport=sport, dport=dport, tag=vtag) / SCTPChunkHeartbeatReq(params=[info])
    if kind == "abort":
        return ip / SCTP(sport=sport, dport=dport, tag=vtag) / SCTPChunkAbort(TCB=1 if extra[:1] == ["t"] else 0)
    if kind == "shutdown-complete":
        return ip / SCTP(sport=sport, dport=dport, tag=vtag) / SCTPChunkShutdownComplete(TCB=1 if extra[:1] == ["t"] else 0)
    if kind == "asconf":
        from scapy.packet import Raw
        return ip / SCTP(sport=sport, dport=dport, tag=vtag) / Raw(asconf_chunk(src, extra[0]))
    raise SystemExit("unknown step kind %r" % kind)


def main():
    iface, dst_mac, *steps = sys.argv[1:]
    for step in steps:
        frame = Ether(dst=dst_mac) / build(step)
        sendp(frame, iface=iface)


if __name__ == "__main__":
    main()

"""The malformed-packet storm of tests/storm_e2e.rs, and the good traffic it runs beside.

usage:
  storm.py echo PORT                       serve a TCP echo on PORT (IPv4 and IPv6) and
                                           print "ready"
  storm.py good VIP[,VIP...] PORT CONNS UDP_VIP UDP_PORT
                                           CONNS echo connections to every VIP, each
                                           sending a seeded byte stream and checking its
                                           echo, plus UDP exchanges; they run until stdin
                                           closes, then print one JSON summary
  storm.py storm IFACE DST_MAC COUNT       read class names on stdin; send COUNT frames
                                           of each with sendp on IFACE, then print
                                           "sent CLASS N"
  storm.py classes                         print every class name

Every storm frame goes to a lab VIP from a client address; each class breaks one thing
(a truncated header at one layer, a bad length, an option, an extension chain, a
fragment, a VLAN stack, an SCTP chunk or parameter length, a checksum). What xlb must do
with each class is the Rust test's business, not this script's.
"""
import json
import random
import socket
import struct
import sys
import threading
import time

VIP4, VIP6 = "198.18.100.10", "2001:db8:100::10"
SCTP4, SCTP6 = "198.18.100.20", "2001:db8:100::20"
SRC4, SRC6 = "198.18.0.13", "2001:db8::13"
CLIENT_MAC = "02:00:00:00:00:10"
STORM_PORT = 81
SCTP_PORT = 38412
CHUNK = 16384


# ---------------------------------------------------------------- good traffic

def serve_echo(port, family):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def stream(seed, index):
    """Chunk `index` of the seeded byte stream of one connection."""
    return random.Random(seed * 1_000_003 + index).randbytes(CHUNK)


def transfer(vip, port, seed, stop, result):
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    sent = 0
    try:
        with socket.create_connection((vip, port), timeout=10) as s:
            s.settimeout(10)
            index = 0
            while not stop.is_set():
                chunk = stream(seed, index)
                s.sendall(chunk)
                got = b""
                while len(got) < CHUNK:
                    part = s.recv(CHUNK - len(got))
                    if not part:
                        raise OSError("closed after %d bytes" % (sent + len(got)))
                    got += part
                if got != chunk:
                    raise OSError("echo differs in chunk %d" % index)
                sent += CHUNK
                index += 1
                time.sleep(0.002)
        result.update(vip=vip, bytes=sent, error=None)
    except OSError as e:
        result.update(vip=vip, bytes=sent, error="%s %s" % (type(e).__name__, e))
    del family


def udp_exchanges(vip, port, stop, result):
    family = socket.AF_INET6 if ":" in vip else socket.AF_INET
    sent = answered = 0
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        while not stop.is_set():
            sent += 1
            # One retry: a datagram lost to copy-mode veth is not the storm's doing.
            for _ in range(2):
                s.sendto(b"ping %d" % sent, (vip, port))
                try:
                    s.recvfrom(2048)
                    answered += 1
                    break
                except socket.timeout:
                    continue
            time.sleep(0.02)
    result.update(sent=sent, answered=answered)


def good(vips, port, conns, udp_vip, udp_port):
    stop = threading.Event()
    results, threads = [], []
    for vip in vips.split(","):
        for n in range(conns):
            result = {}
            results.append(result)
            seed = len(results)
            threads.append(threading.Thread(target=transfer, args=(vip, port, seed, stop, result)))
    udp = {}
    threads.append(threading.Thread(target=udp_exchanges, args=(udp_vip, udp_port, stop, udp)))
    for t in threads:
        t.start()
    print("started", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps({"transfers": results, "udp": udp}), flush=True)


# ---------------------------------------------------------------- the storm

def storm_classes():
    from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest,
                           IPOption_RR, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                           IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw)
    from scapy.layers.sctp import (SCTP, SCTPChunkData, SCTPChunkInit,
                                   SCTPChunkParamIPv4Addr)

    eth = lambda: Ether(dst=DST_MAC, src=CLIENT_MAC)
    sport = lambda: random.randint(1024, 65535)
    ip4 = lambda **kw: IP(src=SRC4, dst=VIP4, **kw)
    ip6 = lambda **kw: IPv6(src=SRC6, dst=VIP6, **kw)
    syn = lambda **kw: TCP(sport=sport(), dport=STORM_PORT, flags="S", **kw)
    udp = lambda **kw: UDP(sport=sport(), dport=STORM_PORT, **kw)

    def patched(frame, at, value):
        """The frame's bytes with the bytes at `at` replaced."""
        raw = bytearray(bytes(frame))
        raw[at:at + len(value)] = value
        return bytes(raw)

    def both(name, build):
        """IPv4 and IPv6 variants of one L4 class (`name` has a {} for the family):
        build(ip) -> the layers on top of ip."""
        return {name.format(4): lambda: bytes(eth() / build(ip4())),
                name.format(6): lambda: bytes(eth() / build(ip6()))}

    def sctp(ip_dst6, tag, *chunks, chksum=None):
        layer = SCTP(sport=sport(), dport=SCTP_PORT, tag=tag)
        if chksum is not None:
            layer.chksum = chksum
        for chunk in chunks:
            layer = layer / chunk
        ip = IPv6(src=SRC6, dst=SCTP6) if ip_dst6 else IP(src=SRC4, dst=SCTP4)
        return eth() / ip / layer

    def sctp_raw(ip6, tag, chunk_bytes):
        """An SCTP packet with raw chunk bytes and a correct CRC32c."""
        return bytes(sctp(ip6, tag, Raw(chunk_bytes)))

    def init_with_params(params):
        # INIT: type 1, flags 0, length; initiate tag, a_rwnd, streams, initial TSN.
        body = struct.pack("!IIHHI", 0x1234, 65535, 1, 1, 1) + params
        return struct.pack("!BBH", 1, 0, 4 + len(body)) + body

    classes = {
        # Ethernet and the tags after it.
        "runt_ethernet": lambda: bytes(eth())[:10],
        "vlan_truncated": lambda: bytes(Ether(dst=DST_MAC, src=CLIENT_MAC, type=0x8100))
        + b"\x00\x05",
        "qinq_8021ad_8021q": lambda: bytes(Ether(dst=DST_MAC, src=CLIENT_MAC, type=0x88A8)
                                           / Dot1Q(vlan=5, type=0x8100) / Dot1Q(vlan=6)
                                           / ip4() / syn()),
        "qinq_8021q_8021q": lambda: bytes(eth() / Dot1Q(vlan=5) / Dot1Q(vlan=6) / ip4()
                                          / syn()),
        "vlan_8021ad_single4": lambda: bytes(Ether(dst=DST_MAC, src=CLIENT_MAC, type=0x88A8)
                                             / Dot1Q(vlan=5, type=0x0800) / ip4() / syn()),
        "vlan_8021q_single4": lambda: bytes(eth() / Dot1Q(vlan=5) / ip4() / syn()),
        "vlan_8021q_single6": lambda: bytes(eth() / Dot1Q(vlan=5) / ip6() / syn()),
        "arp_bad_hardware_len": lambda: patched(
            eth() / ARP(op=1, psrc=SRC4, pdst=VIP4, hwsrc=CLIENT_MAC), 14 + 4, b"\x08"),
        # IP headers.
        "ip4_truncated_header": lambda: bytes(eth() / ip4() / syn())[:14 + 16],
        "ip6_truncated_header": lambda: bytes(eth() / ip6() / syn())[:14 + 30],
        "ip4_ihl_below_5": lambda: patched(eth() / ip4() / syn(), 14, b"\x44"),
        "ip4_ihl_past_end": lambda: patched(eth() / ip4(proto=6), 14, b"\x4f"),
        "ip4_bad_version": lambda: patched(eth() / ip4() / syn(), 14, b"\x65"),
        "ip6_bad_version": lambda: patched(eth() / ip6() / syn(), 14, b"\x40"),
        "ip4_total_len_below_header": lambda: bytes(eth() / ip4(len=12) / syn()),
        "ip4_total_len_past_frame": lambda: bytes(eth() / ip4(len=1400) / syn()),
        "ip6_payload_len_past_frame": lambda: bytes(eth() / ip6(plen=1400) / syn()),
        "ip4_bad_header_checksum": lambda: bytes(eth() / ip4(chksum=0x1234) / syn()),
        "ip4_options_record_route": lambda: bytes(
            eth() / ip4(options=[IPOption_RR(routers=["0.0.0.0"] * 3)]) / syn()),
        "ip4_options_bad_option_length": lambda: bytes(
            eth() / ip4(options=[Raw(b"\x07\x00\x00\x00")]) / syn()),
        "ip4_unknown_protocol": lambda: bytes(eth() / ip4(proto=253) / Raw(b"x" * 20)),
        # Fragments.
        "ip4_first_fragment": lambda: bytes(eth() / ip4(flags="MF") / syn()),
        "ip4_later_fragment": lambda: bytes(eth() / ip4(proto=6, frag=100) / Raw(b"x" * 40)),
        "ip6_first_fragment": lambda: bytes(eth() / ip6() / IPv6ExtHdrFragment(m=1, offset=0)
                                            / syn()),
        "ip6_later_fragment": lambda: bytes(eth() / ip6() / IPv6ExtHdrFragment(nh=6, offset=100)
                                            / Raw(b"x" * 40)),
        "ip6_fragment_header_truncated": lambda: bytes(eth() / ip6(nh=44) / Raw(b"\x06\x00")),
        # IPv6 extension chains.
        "ip6_extension_chain": lambda: bytes(eth() / ip6() / IPv6ExtHdrHopByHop()
                                             / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting()
                                             / IPv6ExtHdrDestOpt() / syn()),
        "ip6_extension_chain_too_long": lambda: bytes(
            eth() / ip6() / _chain(IPv6ExtHdrDestOpt, 10) / syn()),
        "ip6_extension_length_past_end": lambda: patched(
            eth() / ip6() / IPv6ExtHdrHopByHop() / syn(), 14 + 40 + 1, b"\xc8"),
        "ip6_extension_truncated": lambda: bytes(eth() / ip6(nh=0) / Raw(b"\x06")),
        # ICMP.
        "icmp4_truncated": lambda: bytes(eth() / ip4(proto=1) / Raw(b"\x08\x00\x00\x00")),
        "icmp6_truncated": lambda: bytes(eth() / ip6(nh=58) / Raw(b"\x80\x00\x00\x00")),
        "icmp4_error_quoting_garbage": lambda: bytes(
            eth() / ip4() / ICMP(type=3, code=4) / Raw(random.randbytes(28))),
        "icmp6_echo_truncated_payload": lambda: bytes(
            eth() / ip6(plen=200) / ICMPv6EchoRequest(data=b"x" * 16)),
        # SCTP: the common header, chunk lengths, INIT rules, parameters, checksums.
        "sctp4_truncated_common_header": lambda: bytes(
            eth() / IP(src=SRC4, dst=SCTP4, proto=132) / Raw(b"\x00" * 8)),
        "sctp6_truncated_common_header": lambda: bytes(
            eth() / IPv6(src=SRC6, dst=SCTP6, nh=132) / Raw(b"\x00" * 8)),
        "sctp4_no_chunks": lambda: bytes(sctp(False, 0x77)),
        "sctp4_chunk_length_below_4": lambda: sctp_raw(False, 0x77, b"\x00\x03\x00\x02"),
        "sctp6_chunk_length_below_4": lambda: sctp_raw(True, 0x77, b"\x00\x03\x00\x02"),
        "sctp4_chunk_length_past_end": lambda: sctp_raw(False, 0x77, b"\x00\x03\x01\x90" + b"x" * 12),
        "sctp6_chunk_length_past_end": lambda: sctp_raw(True, 0x77, b"\x00\x03\x01\x90" + b"x" * 12),
        "sctp4_init_bundled_with_data": lambda: bytes(sctp(
            False, 0, SCTPChunkInit(init_tag=1, a_rwnd=1, n_out_streams=1, n_in_streams=1,
                                    init_tsn=1), SCTPChunkData(data=b"x"))),
        "sctp4_init_nonzero_tag": lambda: bytes(sctp(
            False, 9, SCTPChunkInit(init_tag=1, a_rwnd=1, n_out_streams=1, n_in_streams=1,
                                    init_tsn=1))),
        "sctp4_init_param_length_below_4": lambda: sctp_raw(
            False, 0, init_with_params(b"\x00\x05\x00\x02")),
        "sctp6_init_param_length_below_4": lambda: sctp_raw(
            True, 0, init_with_params(b"\x00\x05\x00\x02")),
        "sctp4_init_param_length_past_chunk": lambda: sctp_raw(
            False, 0, init_with_params(b"\x00\x05\x00\x40\xc6\x12\x00\x0d")),
        "sctp4_init_address_param_wrong_length": lambda: sctp_raw(
            False, 0, init_with_params(b"\x00\x05\x00\x06\xc6\x12\x00\x00")),
        "sctp4_init_bad_checksum": lambda: bytes(sctp(
            False, 0, SCTPChunkInit(init_tag=1, a_rwnd=1, n_out_streams=1, n_in_streams=1,
                                    init_tsn=1, params=[SCTPChunkParamIPv4Addr(addr=SRC4)]),
            chksum=0x1234)),
        "sctp6_init_bad_checksum": lambda: bytes(sctp(
            True, 0, SCTPChunkInit(init_tag=1, a_rwnd=1, n_out_streams=1, n_in_streams=1,
                                   init_tsn=1), chksum=0x1234)),
        "sctp4_data_unknown_tag": lambda: bytes(sctp(
            False, random.randint(1, 2**32 - 1), SCTPChunkData(data=b"storm"))),
        "sctp6_data_unknown_tag": lambda: bytes(sctp(
            True, random.randint(1, 2**32 - 1), SCTPChunkData(data=b"storm"))),
        "sctp4_asconf_param_past_end": lambda: sctp_raw(
            False, 0x77, b"\xc1\x00\x00\x14" + struct.pack("!I", 1)
            + b"\x00\x05\x00\x08\xc6\x12\x00\x0d" + b"\xc0\x01\x00\x40"),
    }
    classes.update(both("tcp{}_bad_checksum", lambda ip: ip / syn(chksum=0x1234)))
    classes.update(both("udp{}_bad_checksum", lambda ip: ip / udp(chksum=0x1234) / Raw(b"x")))
    classes.update(both("tcp{}_truncated_header",
                        lambda ip: _proto(ip, 6) / Raw(bytes(syn())[:12])))
    classes.update(both("tcp{}_data_offset_below_5", lambda ip: ip / syn(dataofs=3)))
    classes.update(both("tcp{}_data_offset_past_end", lambda ip: ip / syn(dataofs=15)))
    classes.update(both("udp{}_truncated_header",
                        lambda ip: _proto(ip, 17) / Raw(bytes(udp())[:4])))
    classes.update(both("udp{}_length_below_8", lambda ip: ip / udp(len=4) / Raw(b"xxxx")))
    classes.update(both("udp{}_length_past_end", lambda ip: ip / udp(len=500) / Raw(b"xxxx")))
    return classes


def _chain(header, count):
    chain = header()
    for _ in range(count - 1):
        chain = chain / header()
    return chain


def _proto(ip, number):
    if ip.version == 4:
        ip.proto = number
    else:
        ip.nh = number
    return ip


DST_MAC = "02:00:00:00:00:02"


def storm(iface, dst_mac, count):
    global DST_MAC
    DST_MAC = dst_mac
    from scapy.all import conf
    classes = storm_classes()
    sock = conf.L2socket(iface=iface)
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        build = classes[name]
        frames = [build() for _ in range(count)]
        sent = 0
        for frame in frames:
            try:
                sock.send(frame)
                sent += 1
            except OSError:
                pass  # the kernel refused the frame: it was never on the wire
        print("sent %s %d" % (name, sent), flush=True)
    sock.close()


def main():
    mode = sys.argv[1]
    if mode == "echo":
        port = int(sys.argv[2])
        for family in (socket.AF_INET, socket.AF_INET6):
            threading.Thread(target=serve_echo, args=(port, family), daemon=True).start()
        time.sleep(0.2)
        print("ready", flush=True)
        threading.Event().wait()
    elif mode == "good":
        good(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6]))
    elif mode == "storm":
        storm(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "classes":
        print("\n".join(sorted(storm_classes())))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

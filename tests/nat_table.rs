//! Behaviour of the shared NAT session table through its public API: round trips,
//! port allocation and exhaustion, expiry and closing (RSTs checked against the
//! backend's window, half-closed connections), rebinding, capacity, many workers at
//! once, and a model-based property test.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use xlb::lb::nat::{NatBinding, NatConfig, NatKey, NatSessionTable, ReplyPath, TcpSegment};
use xlb::lb::verdict::DropReason;

const TCP: u8 = 6;
const UDP: u8 = 17;
const TCP_IDLE: u64 = 10_000;
const UDP_IDLE: u64 = 2_000;
const TCP_CLOSING: u64 = 500;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn snat_v4() -> IpAddr {
    v4(198, 18, 200, 1)
}

fn snat_v6() -> IpAddr {
    v6(0x200)
}

fn config(addresses: Vec<IpAddr>, port_range: (u16, u16), capacity: usize) -> NatConfig {
    NatConfig {
        addresses,
        port_range,
        capacity,
        tcp_idle_ms: TCP_IDLE,
        udp_idle_ms: UDP_IDLE,
        tcp_closing_ms: TCP_CLOSING,
        // As long as the longest idle time: only the test of the rule shortens it.
        unanswered_idle_ms: TCP_IDLE,
    }
}

fn wide_table() -> NatSessionTable {
    NatSessionTable::new(config(vec![snat_v4(), snat_v6()], (1024, 65535), 1 << 16))
}

/// Client `n` of the IPv4 test network talking to the web VIP.
fn client_v4(n: u32, proto: u8) -> NatKey {
    let [_, b, c, d] = n.to_be_bytes();
    NatKey {
        client: v4(198, 19 ^ (b & 1), c, d),
        client_port: 30_000 + (n % 20_000) as u16,
        vip: v4(198, 18, 100, 10),
        vip_port: 80,
        proto,
    }
}

fn client_v6(n: u16, proto: u8) -> NatKey {
    NatKey {
        client: v6(0x1000 + n),
        client_port: 40_000 + n,
        vip: v6(0x10),
        vip_port: 443,
        proto,
    }
}

/// The caller's flow hash: any function of the key works, as long as it is stable.
fn flow_hash(key: &NatKey) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

fn rst(seq: u32) -> TcpSegment {
    TcpSegment {
        flags: RST,
        seq,
        ..TcpSegment::default()
    }
}

fn fin(seq: u32) -> TcpSegment {
    TcpSegment {
        flags: FIN | ACK,
        seq,
        ..TcpSegment::default()
    }
}

/// A backend segment acknowledging `ack` with window field `window`.
fn backend_ack(flags: u8, ack: u32, window: u16, window_shift: Option<u8>) -> TcpSegment {
    TcpSegment {
        flags: flags | ACK,
        seq: 9_000,
        ack,
        window,
        window_shift,
    }
}

/// The backend's TCP segment on session `b`; whether the session was found.
fn backend_sends(table: &NatSessionTable, b: &NatBinding, segment: TcpSegment, now: u64) -> bool {
    table
        .inbound(
            b.backend,
            b.backend_port,
            b.snat,
            b.snat_port,
            TCP,
            Some(&segment),
            now,
        )
        .is_some()
}

fn reply(table: &NatSessionTable, b: &NatBinding, proto: u8, now: u64) -> Option<NatKey> {
    table
        .inbound(
            b.backend,
            b.backend_port,
            b.snat,
            b.snat_port,
            proto,
            None,
            now,
        )
        .map(|(key, _)| key)
}

#[test]
fn ipv4_outbound_then_reply_restores_the_client() {
    let table = wide_table();
    let key = client_v4(1, TCP);
    let backend = v4(198, 18, 1, 11);
    let binding = table
        .outbound(
            &key,
            backend,
            8080,
            ReplyPath::default(),
            flow_hash(&key),
            0,
        )
        .unwrap();
    assert_eq!(binding.backend, backend);
    assert_eq!(binding.backend_port, 8080);
    assert_eq!(binding.snat, snat_v4());
    assert!(binding.snat_port >= 1024);
    assert_eq!(reply(&table, &binding, TCP, 1), Some(key));
    assert_eq!(table.len(), 1);
}

#[test]
fn ipv6_outbound_then_reply_restores_the_client() {
    let table = wide_table();
    let key = client_v6(1, UDP);
    let backend = v6(0x111);
    let binding = table
        .outbound(&key, backend, 53, ReplyPath::default(), flow_hash(&key), 0)
        .unwrap();
    assert_eq!(binding.snat, snat_v6());
    assert_eq!(reply(&table, &binding, UDP, 1), Some(key));
}

#[test]
fn snat_address_follows_the_backend_family_and_missing_family_is_exhausted() {
    let table = NatSessionTable::new(config(vec![snat_v4()], (1024, 65535), 4096));
    let key = client_v6(2, TCP);
    assert_eq!(
        table.outbound(
            &key,
            v6(0x111),
            80,
            ReplyPath::default(),
            flow_hash(&key),
            0
        ),
        Err(DropReason::NatPortsExhausted)
    );
    let binding = table
        .outbound(
            &key,
            v4(198, 18, 1, 11),
            80,
            ReplyPath::default(),
            flow_hash(&key),
            0,
        )
        .unwrap();
    assert_eq!(binding.snat, snat_v4(), "IPv6 client to IPv4 backend");
}

#[test]
fn same_key_gets_the_same_binding() {
    let table = wide_table();
    let key = client_v4(7, TCP);
    let backend = v4(198, 18, 1, 11);
    let first = table
        .outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), 0)
        .unwrap();
    for now in 1..50 {
        assert_eq!(
            table.outbound(
                &key,
                backend,
                80,
                ReplyPath::default(),
                flow_hash(&key),
                now
            ),
            Ok(first)
        );
    }
    assert_eq!(table.len(), 1);
    assert_eq!(table.stats().created, 1);
}

#[test]
fn distinct_clients_get_distinct_snat_ports() {
    let table = NatSessionTable::new(config(
        vec![snat_v4(), v4(198, 18, 200, 2)],
        (1024, 65535),
        1 << 16,
    ));
    let backend = v4(198, 18, 1, 11);
    let mut taken = HashSet::new();
    for n in 0..20_000 {
        let key = client_v4(n, TCP);
        let binding = table
            .outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), 0)
            .unwrap();
        assert!(
            taken.insert((binding.snat, binding.snat_port)),
            "{binding:?} given twice"
        );
        assert_eq!(reply(&table, &binding, TCP, 0), Some(key));
    }
    let addresses: HashSet<_> = taken.iter().map(|(snat, _)| *snat).collect();
    assert_eq!(addresses.len(), 2, "both SNAT addresses are used");
}

#[test]
fn tiny_port_range_exhausts_then_frees_ports_after_expiry() {
    let table = NatSessionTable::new(config(vec![snat_v4()], (7000, 7003), 64));
    let backend = v4(198, 18, 1, 11);
    let mut ports = HashSet::new();
    for n in 0..4 {
        let key = client_v4(n, UDP);
        let binding = table
            .outbound(&key, backend, 53, ReplyPath::default(), flow_hash(&key), 0)
            .unwrap();
        assert!((7000..=7003).contains(&binding.snat_port));
        ports.insert(binding.snat_port);
    }
    assert_eq!(ports.len(), 4);
    let fifth = client_v4(4, UDP);
    assert_eq!(
        table.outbound(
            &fifth,
            backend,
            53,
            ReplyPath::default(),
            flow_hash(&fifth),
            1
        ),
        Err(DropReason::NatPortsExhausted)
    );
    assert_eq!(table.stats().ports_exhausted, 1);

    // A port is unique per backend, not globally: another backend still has all four.
    let other = table
        .outbound(
            &fifth,
            v4(198, 18, 1, 12),
            53,
            ReplyPath::default(),
            flow_hash(&fifth),
            1,
        )
        .unwrap();
    assert!(ports.contains(&other.snat_port));

    // Not yet idle long enough: nothing frees.
    assert_eq!(table.expire(UDP_IDLE - 1), 0);
    let late = client_v4(5, UDP);
    assert!(table
        .outbound(
            &late,
            backend,
            53,
            ReplyPath::default(),
            flow_hash(&late),
            UDP_IDLE - 1
        )
        .is_err());

    assert_eq!(table.expire(UDP_IDLE + 1), 5);
    assert!(table.is_empty());
    for n in 10..14 {
        let key = client_v4(n, UDP);
        let binding = table
            .outbound(
                &key,
                backend,
                53,
                ReplyPath::default(),
                flow_hash(&key),
                UDP_IDLE + 2,
            )
            .unwrap();
        assert!(ports.contains(&binding.snat_port));
    }
}

#[test]
fn reply_to_an_unknown_session_is_none() {
    let table = wide_table();
    let key = client_v4(3, TCP);
    let backend = v4(198, 18, 1, 11);
    let b = table
        .outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), 0)
        .unwrap();
    let other_port = if b.snat_port == 65535 {
        1024
    } else {
        b.snat_port + 1
    };
    assert_eq!(
        table
            .inbound(backend, 80, b.snat, other_port, TCP, None, 0)
            .map(|(key, _)| key),
        None
    );
    assert_eq!(
        table
            .inbound(backend, 80, b.snat, 80, TCP, None, 0)
            .map(|(key, _)| key),
        None,
        "below range"
    );
    assert_eq!(
        table
            .inbound(backend, 81, b.snat, b.snat_port, TCP, None, 0)
            .map(|(key, _)| key),
        None
    );
    assert_eq!(
        table
            .inbound(v4(198, 18, 1, 12), 80, b.snat, b.snat_port, TCP, None, 0)
            .map(|(key, _)| key),
        None
    );
    assert_eq!(
        table
            .inbound(backend, 80, b.snat, b.snat_port, UDP, None, 0)
            .map(|(key, _)| key),
        None
    );
    assert_eq!(
        table
            .inbound(backend, 80, v4(198, 18, 200, 9), b.snat_port, TCP, None, 0)
            .map(|(key, _)| key),
        None
    );
}

#[test]
fn rst_shortens_a_tcp_session_and_later_packets_do_not_revive_it() {
    let table = wide_table();
    let backend = v4(198, 18, 1, 11);
    let closed = client_v4(1, TCP);
    let open = client_v4(2, TCP);
    let b = table
        .outbound(
            &closed,
            backend,
            80,
            ReplyPath::default(),
            flow_hash(&closed),
            0,
        )
        .unwrap();
    table
        .outbound(
            &open,
            backend,
            80,
            ReplyPath::default(),
            flow_hash(&open),
            0,
        )
        .unwrap();
    // A RST before the backend acknowledged anything: no window to check it against.
    assert_eq!(
        table.client_segment(&closed, flow_hash(&closed), &rst(0), 100),
        Ok(())
    );
    // A late ACK after the RST still passes but does not extend the session.
    assert_eq!(reply(&table, &b, TCP, 200), Some(closed));
    assert_eq!(table.expire(100 + TCP_CLOSING - 1), 0);
    assert_eq!(table.expire(100 + TCP_CLOSING), 1);
    assert_eq!(reply(&table, &b, TCP, 100 + TCP_CLOSING), None);
    assert_eq!(table.len(), 1, "the open session stays");
}

/// A TCP session whose backend answered with a SYN-ACK (window scale 7) at time 0.
fn answered_session(table: &NatSessionTable, n: u32) -> (NatKey, NatBinding) {
    let key = client_v4(n, TCP);
    let binding = table
        .outbound(
            &key,
            v4(198, 18, 1, 11),
            80,
            ReplyPath::default(),
            flow_hash(&key),
            0,
        )
        .unwrap();
    assert!(backend_sends(
        table,
        &binding,
        backend_ack(SYN, 1_001, 1_000, Some(7)),
        0
    ));
    (key, binding)
}

#[test]
fn out_of_window_rst_is_refused_and_the_session_lives_on() {
    let table = wide_table();
    let (key, b) = answered_session(&table, 1);
    let hash = flow_hash(&key);
    // The SYN-ACK's own window is never scaled (RFC 7323 §2.2): 1000 bytes from 1001.
    for seq in [1_001 + 1_000, 1_000, 1_001u32.wrapping_sub(1 << 31)] {
        assert_eq!(
            table.client_segment(&key, hash, &rst(seq), 10),
            Err(DropReason::NatRstOutOfWindow),
            "seq {seq}"
        );
    }
    // Later windows are scaled: 100 << 7 = 12800 bytes from the last ACK.
    assert!(backend_sends(
        &table,
        &b,
        backend_ack(0, 5_001, 100, None),
        20
    ));
    assert_eq!(
        table.client_segment(&key, hash, &rst(5_001 + 12_800), 30),
        Err(DropReason::NatRstOutOfWindow)
    );
    assert_eq!(
        table.client_segment(&key, hash, &rst(1_001), 30),
        Err(DropReason::NatRstOutOfWindow),
        "below the last ACK"
    );
    // Nothing was closed: the session keeps its full idle time.
    assert_eq!(table.expire(30 + TCP_CLOSING), 0);
    assert_eq!(table.expire(TCP_IDLE - 1), 0);
    assert_eq!(reply(&table, &b, TCP, TCP_IDLE - 1), Some(key));
}

#[test]
fn in_window_rst_closes_the_session() {
    let table = wide_table();
    let (key, b) = answered_session(&table, 1);
    assert!(backend_sends(
        &table,
        &b,
        backend_ack(0, 5_001, 100, None),
        20
    ));
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst(5_001 + 12_799), 100),
        Ok(())
    );
    assert_eq!(table.expire(100 + TCP_CLOSING - 1), 0);
    assert_eq!(table.expire(100 + TCP_CLOSING), 1);

    // The exact next sequence number closes too, across the 2^32 wrap, and with a zero
    // window (RFC 9293 §3.10.7.4).
    let (key, b) = answered_session(&table, 2);
    assert!(backend_sends(
        &table,
        &b,
        backend_ack(0, u32::MAX - 10, 1, None),
        20
    ));
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst(100), 100),
        Ok(()),
        "111 bytes past the ACK, in a 128-byte window"
    );
    let (key, b) = answered_session(&table, 3);
    assert!(backend_sends(
        &table,
        &b,
        backend_ack(0, 7_000, 0, None),
        20
    ));
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst(7_001), 100),
        Err(DropReason::NatRstOutOfWindow)
    );
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst(7_000), 100),
        Ok(())
    );
    assert_eq!(table.expire(100 + TCP_CLOSING), 2);
}

#[test]
fn a_session_picked_up_mid_connection_takes_the_largest_window_scale() {
    let table = wide_table();
    let key = client_v4(4, TCP);
    let b = table
        .outbound(
            &key,
            v4(198, 18, 1, 11),
            80,
            ReplyPath::default(),
            flow_hash(&key),
            0,
        )
        .unwrap();
    // No SYN-ACK seen: the shift is unknown, so 10 << 14 bytes.
    assert!(backend_sends(&table, &b, backend_ack(0, 0, 10, None), 1));
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst(10 << 14), 2),
        Err(DropReason::NatRstOutOfWindow)
    );
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst((10 << 14) - 1), 2),
        Ok(())
    );
}

#[test]
fn a_backend_rst_closes_the_session() {
    let table = wide_table();
    let (_, b) = answered_session(&table, 1);
    assert!(backend_sends(
        &table,
        &b,
        backend_ack(RST, 1_001, 0, None),
        50
    ));
    assert_eq!(table.expire(50 + TCP_CLOSING), 1);
}

#[test]
fn half_closed_session_lives_past_eleven_seconds_until_the_second_fin() {
    // The defaults' shape: a long idle time, a 10 s closing time.
    const IDLE: u64 = 300_000;
    const CLOSING: u64 = 10_000;
    let table = NatSessionTable::new(NatConfig {
        tcp_idle_ms: IDLE,
        tcp_closing_ms: CLOSING,
        ..config(vec![snat_v4()], (1024, 65535), 1 << 12)
    });
    // Client FIN first, the backend still sending; then the backend's FIN.
    let (client_first, b1) = answered_session(&table, 1);
    // Backend FIN first (the server ended its side), the client still sending.
    let (backend_first, b2) = answered_session(&table, 2);
    assert_eq!(
        table.client_segment(&client_first, flow_hash(&client_first), &fin(1_001), 1_000),
        Ok(())
    );
    assert!(backend_sends(
        &table,
        &b2,
        backend_ack(FIN, 1_001, 1_000, None),
        1_000
    ));
    assert_eq!(table.expire(1_000 + 11_000), 0, "half-closed past 11 s");
    assert_eq!(reply(&table, &b1, TCP, 12_000), Some(client_first));
    assert_eq!(table.expire(1_000 + IDLE - 1), 0);

    // The second FINs: now both connections close after the short timer.
    let t = 1_000 + IDLE - 1;
    assert!(backend_sends(
        &table,
        &b1,
        backend_ack(FIN, 1_002, 1_000, None),
        t
    ));
    assert_eq!(
        table.client_segment(&backend_first, flow_hash(&backend_first), &fin(1_001), t),
        Ok(())
    );
    assert_eq!(table.expire(t + CLOSING - 1), 0);
    assert_eq!(table.expire(t + CLOSING), 2);
}

#[test]
fn unanswered_sessions_expire_early_and_a_reply_gives_the_full_idle_time() {
    const UNANSWERED: u64 = 1_000;
    let table = NatSessionTable::new(NatConfig {
        unanswered_idle_ms: UNANSWERED,
        ..config(vec![snat_v4()], (1024, 65535), 1 << 12)
    });
    let backend = v4(198, 18, 1, 11);
    let open = |key: &NatKey, now: u64| {
        table
            .outbound(key, backend, 80, ReplyPath::default(), flow_hash(key), now)
            .unwrap()
    };
    let syn_only = client_v4(1, TCP);
    let retrying = client_v4(2, TCP);
    let answered = client_v4(3, TCP);
    let one_way_udp = client_v4(4, UDP);
    open(&syn_only, 0);
    open(&retrying, 0);
    let b = open(&answered, 0);
    open(&one_way_udp, 0);
    assert_eq!(reply(&table, &b, TCP, 10), Some(answered));
    // Client packets after the reply keep the session answered.
    open(&answered, 20);
    // A retransmitted SYN keeps its session, still unanswered.
    open(&retrying, UNANSWERED - 1);

    assert_eq!(table.expire(UNANSWERED - 1), 0);
    assert_eq!(
        table.expire(UNANSWERED),
        2,
        "the lone SYN and the one-way UDP flow"
    );
    assert_eq!(table.expire(2 * UNANSWERED - 2), 0);
    assert_eq!(table.expire(2 * UNANSWERED - 1), 1, "the retried SYN");
    assert_eq!(table.expire(20 + TCP_IDLE - 1), 0);
    assert_eq!(
        table.expire(20 + TCP_IDLE),
        1,
        "the answered flow lasts its idle time"
    );
    assert!(table.is_empty());
    let stats = table.stats();
    assert_eq!((stats.expired, stats.expired_unanswered), (4, 3));
}

#[test]
fn rst_of_an_unknown_key_changes_nothing() {
    let table = wide_table();
    let key = client_v4(1, TCP);
    assert_eq!(
        table.client_segment(&key, flow_hash(&key), &rst(7), 0),
        Ok(())
    );
    assert!(table.is_empty());
}

#[test]
fn each_protocol_expires_after_its_own_idle_time_and_traffic_keeps_it() {
    let table = wide_table();
    let backend = v4(198, 18, 1, 11);
    let tcp = client_v4(1, TCP);
    let udp = client_v4(1, UDP);
    let udp_busy = client_v4(2, UDP);
    table
        .outbound(&tcp, backend, 80, ReplyPath::default(), flow_hash(&tcp), 0)
        .unwrap();
    table
        .outbound(&udp, backend, 80, ReplyPath::default(), flow_hash(&udp), 0)
        .unwrap();
    let busy = table
        .outbound(
            &udp_busy,
            backend,
            80,
            ReplyPath::default(),
            flow_hash(&udp_busy),
            0,
        )
        .unwrap();
    // Replies alone keep a session alive.
    assert_eq!(reply(&table, &busy, UDP, UDP_IDLE - 1), Some(udp_busy));

    assert_eq!(table.expire(UDP_IDLE), 1, "idle UDP goes first");
    assert_eq!(table.len(), 2);
    assert_eq!(table.expire(2 * UDP_IDLE - 1), 1, "then the busy UDP one");
    assert_eq!(table.expire(TCP_IDLE - 1), 0);
    assert_eq!(table.expire(TCP_IDLE), 1, "TCP lasts its own idle time");
    assert_eq!(table.stats().expired, 3);
    assert!(table.is_empty());
}

#[test]
fn session_whose_backend_left_is_rebound() {
    let table = wide_table();
    let key = client_v4(9, TCP);
    let old = table
        .outbound(
            &key,
            v4(198, 18, 1, 11),
            80,
            ReplyPath::default(),
            flow_hash(&key),
            0,
        )
        .unwrap();
    let new = table
        .outbound(
            &key,
            v4(198, 18, 1, 12),
            80,
            ReplyPath::default(),
            flow_hash(&key),
            5,
        )
        .unwrap();
    assert_eq!(new.backend, v4(198, 18, 1, 12));
    assert_eq!(reply(&table, &old, TCP, 6), None, "old reply key is gone");
    assert_eq!(reply(&table, &new, TCP, 6), Some(key));
    assert_eq!(table.len(), 1);
    let stats = table.stats();
    assert_eq!((stats.created, stats.rebound), (1, 1));
}

#[test]
fn capacity_is_respected_and_counted() {
    let table = NatSessionTable::new(config(vec![snat_v4()], (1024, 65535), 100));
    let backend = v4(198, 18, 1, 11);
    for n in 0..100 {
        let key = client_v4(n, TCP);
        table
            .outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), 0)
            .unwrap();
    }
    let key = client_v4(100, TCP);
    assert_eq!(
        table.outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), 0),
        Err(DropReason::NatPortsExhausted)
    );
    let stats = table.stats();
    assert_eq!((stats.sessions, stats.table_full), (100, 1));

    // A sharded table never holds more than its capacity either.
    let capacity = 10_000;
    let table = NatSessionTable::new(config(vec![snat_v4()], (1024, 65535), capacity));
    let created = (0..2 * capacity as u32)
        .filter(|&n| {
            let key = client_v4(n, TCP);
            table
                .outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), 0)
                .is_ok()
        })
        .count();
    assert_eq!(created, table.len());
    assert!(table.len() <= capacity);
    assert!(table.len() > capacity * 9 / 10, "shards fill evenly");
}

#[test]
fn snat_addresses_are_recognised() {
    let table = wide_table();
    assert!(table.is_snat_address(&snat_v4()));
    assert!(table.is_snat_address(&snat_v6()));
    assert!(!table.is_snat_address(&v4(198, 18, 100, 10)));
    assert!(!table.is_snat_address(&v6(0x10)));
}

#[test]
fn workers_sharing_keys_agree_on_every_binding() {
    const STRIDES: [usize; 4] = [1, 3, 7, 9];
    let table = wide_table();
    let backends = [v4(198, 18, 1, 11), v4(198, 18, 1, 12)];
    let keys: Vec<NatKey> = (0..2_000).map(|n| client_v4(n, TCP)).collect();
    let seen: Vec<Vec<NatBinding>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let (table, keys) = (&table, &keys);
                scope.spawn(move || {
                    let mut bindings = Vec::with_capacity(keys.len());
                    // Each worker walks the keys in its own order (a stride coprime with
                    // the key count), so creations race.
                    let order = |i: usize| (i * STRIDES[worker] + worker * 500) % keys.len();
                    for i in 0..keys.len() {
                        let key = &keys[order(i)];
                        let backend = backends[flow_hash(key) as usize % 2];
                        let b = table
                            .outbound(
                                key,
                                backend,
                                80,
                                ReplyPath::default(),
                                flow_hash(key),
                                i as u64,
                            )
                            .unwrap();
                        assert_eq!(reply(table, &b, TCP, i as u64), Some(*key));
                        bindings.push(b);
                    }
                    let mut by_key: Vec<(usize, NatBinding)> =
                        (0..keys.len()).map(order).zip(bindings).collect();
                    by_key.sort_by_key(|(k, _)| *k);
                    by_key.into_iter().map(|(_, b)| b).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for worker in &seen[1..] {
        assert_eq!(worker, &seen[0]);
    }
    assert_eq!(table.len(), keys.len());
    assert_eq!(table.stats().created, keys.len() as u64);
    let replies: HashSet<_> = seen[0]
        .iter()
        .map(|b| (b.backend, b.snat, b.snat_port))
        .collect();
    assert_eq!(replies.len(), keys.len());
}

#[test]
fn expiry_racing_with_traffic_keeps_the_table_consistent() {
    let table = NatSessionTable::new(config(vec![snat_v4()], (1024, 65535), 1 << 14));
    let backend = v4(198, 18, 1, 11);
    std::thread::scope(|scope| {
        for worker in 0..3u32 {
            let table = &table;
            scope.spawn(move || {
                for round in 0..20u64 {
                    for n in 0..500 {
                        let key = client_v4(worker * 1_000 + n, UDP);
                        let now = round * UDP_IDLE;
                        let b = table
                            .outbound(
                                &key,
                                backend,
                                53,
                                ReplyPath::default(),
                                flow_hash(&key),
                                now,
                            )
                            .unwrap();
                        // The expirer runs on its own clock and may have just removed it.
                        let restored = reply(table, &b, UDP, now);
                        assert!(restored.is_none() || restored == Some(key));
                    }
                }
            });
        }
        scope.spawn(|| {
            for round in 0..200u64 {
                table.expire(round * UDP_IDLE / 10);
            }
        });
    });
    let stats = table.stats();
    assert_eq!(stats.sessions, table.len());
    assert_eq!(
        stats.created - stats.expired,
        stats.sessions as u64,
        "every created session is either live or expired"
    );
}

/// What the table must hold, kept with the same rules the table documents.
#[derive(Clone, Copy, Debug)]
struct ModelSession {
    binding: NatBinding,
    last_seen: u64,
    closing: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Outbound { client: u32, proto: u8, backend: u8 },
    Inbound { client: u32, proto: u8 },
    Close { client: u32 },
    Tick(u64),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    let proto = prop_oneof![Just(TCP), Just(UDP)];
    prop_oneof![
        4 => (0u32..24, proto.clone(), 11u8..13)
            .prop_map(|(client, proto, backend)| Op::Outbound { client, proto, backend }),
        3 => (0u32..24, proto).prop_map(|(client, proto)| Op::Inbound { client, proto }),
        1 => (0u32..24).prop_map(|client| Op::Close { client }),
        2 => (1u64..1_500).prop_map(Op::Tick),
        1 => Just(Op::Expire),
    ]
}

const MODEL_PORTS: usize = 6;

proptest! {
    #[test]
    fn any_sequence_matches_the_model_and_keeps_reply_keys_unique(
        ops in proptest::collection::vec(op(), 1..150),
        capacity in 1usize..30,
    ) {
        let table = NatSessionTable::new(config(vec![snat_v4()], (9000, 9005), capacity));
        let mut model: HashMap<NatKey, ModelSession> = HashMap::new();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::Outbound { client, proto, backend } => {
                    let key = client_v4(client, proto);
                    let backend = v4(198, 18, 1, backend);
                    let result = table.outbound(&key, backend, 80, ReplyPath::default(), flow_hash(&key), now);
                    match model.get_mut(&key) {
                        Some(session) if session.binding.backend == backend => {
                            prop_assert_eq!(result, Ok(session.binding));
                            if !session.closing {
                                session.last_seen = now;
                            }
                            continue;
                        }
                        Some(_) => {
                            model.remove(&key);
                        }
                        None => {}
                    }
                    let towards_backend = model
                        .iter()
                        .filter(|(k, s)| k.proto == proto && s.binding.backend == backend)
                        .count();
                    if model.len() == capacity || towards_backend == MODEL_PORTS {
                        prop_assert_eq!(result, Err(DropReason::NatPortsExhausted));
                    } else {
                        let binding = result.expect("a port and a slot are free");
                        model.insert(key, ModelSession { binding, last_seen: now, closing: false });
                    }
                }
                Op::Inbound { client, proto } => {
                    let key = client_v4(client, proto);
                    if let Some(session) = model.get_mut(&key) {
                        prop_assert_eq!(reply(&table, &session.binding, proto, now), Some(key));
                        if !session.closing {
                            session.last_seen = now;
                        }
                    }
                }
                Op::Close { client } => {
                    let key = client_v4(client, TCP);
                    // The model's sessions never see a backend ACK: every RST is taken.
                    prop_assert_eq!(table.client_segment(&key, flow_hash(&key), &rst(0), now), Ok(()));
                    if let Some(session) = model.get_mut(&key) {
                        session.closing = true;
                        session.last_seen = now;
                    }
                }
                Op::Tick(ms) => now += ms,
                Op::Expire => {
                    let before = model.len();
                    model.retain(|key, session| {
                        let timeout = match (session.closing, key.proto) {
                            (true, _) => TCP_CLOSING,
                            (false, TCP) => TCP_IDLE,
                            (false, _) => UDP_IDLE,
                        };
                        now - session.last_seen < timeout
                    });
                    prop_assert_eq!(table.expire(now), before - model.len());
                }
            }
            prop_assert_eq!(table.len(), model.len());
            let reply_keys: HashSet<_> = model
                .iter()
                .map(|(k, s)| (s.binding.backend, s.binding.snat_port, k.proto))
                .collect();
            prop_assert_eq!(reply_keys.len(), model.len());
        }
    }
}

#[test]
fn sweeps_free_idle_sessions_a_bounded_slice_at_a_time() {
    // 1024 slots in one shard; each sweep visits 256 of them.
    let table = NatSessionTable::new(config(vec![snat_v4()], (1024, 65535), 1024));
    let backend = v4(198, 18, 1, 11);
    for n in 0..300 {
        let key = client_v4(n, UDP);
        table
            .outbound(&key, backend, 53, ReplyPath::default(), flow_hash(&key), 1)
            .unwrap();
    }
    assert_eq!(table.sweep(UDP_IDLE, 256), 0, "nothing is idle yet");
    let freed: Vec<usize> = (0..4).map(|_| table.sweep(UDP_IDLE + 1, 256)).collect();
    // The cursor went round once (to where the first sweep began) and freed each
    // session exactly once, however the sessions lie in the slab.
    assert_eq!(freed.iter().sum::<usize>(), 300, "{freed:?}");
    assert!(freed.iter().all(|&n| n <= 256), "{freed:?}");
    assert!(table.is_empty());
}

#[test]
fn a_full_port_pool_refuses_until_a_session_leaves_and_other_pools_are_unaffected() {
    // One shard owning 1000 ports: more than one search probes, so fullness is counted.
    let table = NatSessionTable::new(config(vec![snat_v4()], (2000, 2999), 2000));
    let backend = v4(198, 18, 1, 11);
    let open = |n: u32, port: u16, now: u64| {
        let key = client_v4(n, UDP);
        table.outbound(
            &key,
            backend,
            port,
            ReplyPath::default(),
            flow_hash(&key),
            now,
        )
    };
    for n in 0..1000 {
        open(n, 53, 0).unwrap();
    }
    for n in 1000..1100 {
        assert_eq!(open(n, 53, 1), Err(DropReason::NatPortsExhausted));
    }
    assert_eq!(table.stats().ports_exhausted, 100);
    // The same backend on another port is another pool, with all its ports.
    assert!(open(2000, 80, 1).is_ok());
    // Everything from time 0 expires; the pool takes new sessions again.
    assert_eq!(table.expire(UDP_IDLE), 1000);
    assert!(open(3000, 53, UDP_IDLE).is_ok());
}

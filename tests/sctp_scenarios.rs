//! SCTP multihoming scenarios (docs/architecture.md, "SCTP multihoming") driven through
//! `SctpAssociationTable::decide` with real SCTP bytes built by `wire::sctp`'s emitters:
//! multihoming and ASCONF, closing, and the trust rules (tags, addresses, CRC32c),
//! floods of INITs, restarts and collisions.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xlb::lb::sctp::replica::{Adopted, SctpReplica};
use xlb::lb::sctp::{
    SctpAssociationState, SctpAssociationTable, SctpConfig, SctpDecision, SctpPath,
};
use xlb::lb::verdict::DropReason;
use xlb::wire::sctp::{AsconfRequest, AsconfRequestKind, ChunkRepr, PacketRepr};

const SERVICE: u32 = 1;
const CLIENT_PORT: u16 = 5000;
const SERVER_PORT: u16 = 38412;
const CLIENT_TAG: u32 = 0x0c11_e017;
const BACKEND_TAG: u32 = 0x0bac_0e17;
const LINGER_MS: u64 = 1_000;
const IDLE_MS: u64 = 60_000;
const EMBRYONIC_MS: u64 = 5_000;
const EMBRYONIC_PER_SOURCE: u32 = 4;
/// The backend Maglev picks in these tests.
const MAGLEV_PICK: u32 = 7;

fn client(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
}

fn vip(third: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, third, 20))
}

fn client_v6(last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn vip_v6() -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x20))
}

fn table(capacity: usize) -> SctpAssociationTable {
    SctpAssociationTable::new(SctpConfig {
        capacity,
        max_addresses: 8,
        linger_ms: LINGER_MS,
        idle_ms: IDLE_MS,
        embryonic_ms: EMBRYONIC_MS,
        embryonic_per_source: EMBRYONIC_PER_SOURCE,
    })
}

fn path(src: IpAddr, dst: IpAddr) -> SctpPath {
    SctpPath {
        service: SERVICE,
        src,
        dst,
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
    }
}

fn packet(verification_tag: u32, chunks: &[ChunkRepr<'_>]) -> Vec<u8> {
    PacketRepr {
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
        verification_tag,
        chunks,
    }
    .to_vec()
}

fn init(client_tag: u32, addresses: &[IpAddr]) -> Vec<u8> {
    packet(
        0,
        &[ChunkRepr::Init {
            initiate_tag: client_tag,
            a_rwnd: 65536,
            outbound_streams: 2,
            inbound_streams: 2,
            initial_tsn: 1,
            addresses,
        }],
    )
}

fn cookie_echo(backend_tag: u32) -> Vec<u8> {
    packet(
        backend_tag,
        &[ChunkRepr::CookieEcho {
            cookie: b"opaque state cookie",
        }],
    )
}

fn heartbeat(backend_tag: u32) -> Vec<u8> {
    packet(
        backend_tag,
        &[ChunkRepr::Heartbeat {
            info: b"path probe",
        }],
    )
}

fn data(backend_tag: u32) -> Vec<u8> {
    packet(
        backend_tag,
        &[ChunkRepr::Data {
            tsn: 2,
            stream_id: 0,
            stream_seq: 0,
            ppid: 60,
            payload: b"NGSetupRequest",
        }],
    )
}

fn asconf(backend_tag: u32, sender: IpAddr, requests: &[(AsconfRequestKind, IpAddr)]) -> Vec<u8> {
    let requests: Vec<AsconfRequest> = requests
        .iter()
        .zip(1..)
        .map(|(&(kind, address), correlation_id)| AsconfRequest {
            kind,
            correlation_id,
            address,
        })
        .collect();
    packet(
        backend_tag,
        &[ChunkRepr::Asconf {
            serial: 1,
            address: sender,
            requests: &requests,
        }],
    )
}

fn abort(tag: u32, reflected: bool) -> Vec<u8> {
    packet(tag, &[ChunkRepr::Abort { reflected }])
}

fn shutdown_complete(tag: u32, reflected: bool) -> Vec<u8> {
    packet(tag, &[ChunkRepr::ShutdownComplete { reflected }])
}

fn forward(backend: u32, new_association: bool) -> SctpDecision {
    SctpDecision::Forward {
        backend,
        new_association,
    }
}

/// Runs `decide` with Maglev answering `MAGLEV_PICK`, every backend present, and
/// counts how often Maglev was asked.
struct Harness {
    table: SctpAssociationTable,
    maglev_calls: Cell<usize>,
}

impl Harness {
    fn new(capacity: usize) -> Self {
        Harness {
            table: table(capacity),
            maglev_calls: Cell::new(0),
        }
    }

    fn decide(&self, path: &SctpPath, bytes: &[u8], now_ms: u64) -> SctpDecision {
        self.decide_with(path, bytes, now_ms, |_| true)
    }

    fn decide_with(
        &self,
        path: &SctpPath,
        bytes: &[u8],
        now_ms: u64,
        backend_present: impl Fn(u32) -> bool,
    ) -> SctpDecision {
        let select = || {
            self.maglev_calls.set(self.maglev_calls.get() + 1);
            Some(MAGLEV_PICK)
        };
        self.table
            .decide(path, bytes, now_ms, select, backend_present)
    }

    /// INIT from A1 (listing `listed`) then COOKIE-ECHO: an established association.
    fn establish(&self, listed: &[IpAddr]) {
        let a1 = path(client(1), vip(100));
        assert_eq!(
            self.decide(&a1, &init(CLIENT_TAG, listed), 0),
            forward(MAGLEV_PICK, true)
        );
        assert_eq!(
            self.decide(&a1, &cookie_echo(BACKEND_TAG), 1),
            forward(MAGLEV_PICK, false)
        );
    }

    fn addresses(&self, of: IpAddr) -> Vec<IpAddr> {
        self.table
            .association(SERVICE, of, CLIENT_PORT, SERVER_PORT)
            .map(|info| info.addresses.to_vec())
            .unwrap_or_default()
    }
}

#[test]
fn heartbeat_from_a_listed_address_to_the_second_vip_reaches_the_same_backend() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    let a2_to_vip2 = path(client(2), vip(101));
    assert_eq!(
        harness.decide(&a2_to_vip2, &heartbeat(BACKEND_TAG), 2),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.decide(&a2_to_vip2, &data(BACKEND_TAG), 3),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.maglev_calls.get(), 1, "only the INIT is hashed");
    assert_eq!(harness.addresses(client(2)), [client(1), client(2)]);
}

#[test]
fn init_retransmitted_on_a_known_path_keeps_its_backend() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    assert_eq!(
        harness.decide(&a1, &init(CLIENT_TAG, &[]), 0),
        forward(MAGLEV_PICK, true)
    );
    let moved = || Some(MAGLEV_PICK + 1);
    let decision = harness
        .table
        .decide(&a1, &init(CLIENT_TAG, &[]), 1, moved, |_| true);
    assert_eq!(decision, forward(MAGLEV_PICK, false));
    assert_eq!(harness.table.len(), 1);
}

#[test]
fn cookie_echo_teaches_the_backend_tag() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    harness.decide(&a1, &init(CLIENT_TAG, &[]), 0);
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), 1),
        SctpDecision::Drop(DropReason::SctpUnknownAssociation),
        "the backend tag is unknown before COOKIE-ECHO"
    );
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.state, SctpAssociationState::CookieWait);
    assert_eq!(info.backend_tag, None);

    assert_eq!(
        harness.decide(&a1, &cookie_echo(BACKEND_TAG), 2),
        forward(MAGLEV_PICK, false)
    );
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.state, SctpAssociationState::Established);
    assert_eq!(info.backend_tag, Some(BACKEND_TAG));
    assert_eq!(info.client_tag, Some(CLIENT_TAG));
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), 3),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.maglev_calls.get(), 1);
}

#[test]
fn cookie_echo_without_init_is_hashed_once_and_learns_the_tag() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    assert_eq!(
        harness.decide(&a1, &cookie_echo(BACKEND_TAG), 0),
        forward(MAGLEV_PICK, true)
    );
    assert_eq!(
        harness.decide(&a1, &cookie_echo(BACKEND_TAG), 1),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), 2),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.maglev_calls.get(), 1);
}

#[test]
fn asconf_add_ip_then_traffic_from_the_new_address() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let a1 = path(client(1), vip(100));
    let add = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(3))],
    );
    assert_eq!(harness.decide(&a1, &add, 2), forward(MAGLEV_PICK, false));
    assert_eq!(harness.addresses(client(3)), [client(1), client(3)]);

    let a3_to_vip2 = path(client(3), vip(101));
    assert_eq!(
        harness.decide(&a3_to_vip2, &data(BACKEND_TAG), 3),
        forward(MAGLEV_PICK, false)
    );
    // The path index knows the new address: a reflected ABORT from it is matched.
    assert_eq!(
        harness.decide(&a3_to_vip2, &abort(CLIENT_TAG, true), 4),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.maglev_calls.get(), 1);
    assert_eq!(harness.table.stats().address_updates, 1);
}

#[test]
fn asconf_add_ip_wildcard_adds_the_packet_source() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let from_a4 = path(client(4), vip(101));
    let add = asconf(
        BACKEND_TAG,
        client(4),
        &[(AsconfRequestKind::AddIp, IpAddr::V4(Ipv4Addr::UNSPECIFIED))],
    );
    assert_eq!(
        harness.decide(&from_a4, &add, 2),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.addresses(client(4)), [client(1), client(4)]);
}

#[test]
fn asconf_delete_ip_then_that_address_misses() {
    let harness = Harness::new(16);
    harness.establish(&[client(2), client(3)]);
    let a1 = path(client(1), vip(100));
    let delete = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::DeleteIp, client(3))],
    );
    assert_eq!(harness.decide(&a1, &delete, 2), forward(MAGLEV_PICK, false));
    assert_eq!(harness.addresses(client(1)), [client(1), client(2)]);
    assert!(harness
        .table
        .association(SERVICE, client(3), CLIENT_PORT, SERVER_PORT)
        .is_none());
    // A reflected ABORT from the deleted address is no longer the association's.
    let a3 = path(client(3), vip(100));
    assert_eq!(
        harness.decide(&a3, &abort(CLIENT_TAG, true), 3),
        SctpDecision::Drop(DropReason::SctpForeignAddress)
    );
    // The packet's own source address is never deleted (the backend refuses too).
    let delete_source = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::DeleteIp, client(1))],
    );
    harness.decide(&a1, &delete_source, 4);
    assert_eq!(harness.addresses(client(1)), [client(1), client(2)]);
}

#[test]
fn asconf_delete_ip_wildcard_keeps_only_the_source_and_set_primary_is_recorded() {
    let harness = Harness::new(16);
    harness.establish(&[client(2), client(3)]);
    let a2 = path(client(2), vip(101));
    let requests = [
        (
            AsconfRequestKind::DeleteIp,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ),
        (
            AsconfRequestKind::SetPrimary,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ),
    ];
    assert_eq!(
        harness.decide(&a2, &asconf(BACKEND_TAG, client(2), &requests), 2),
        forward(MAGLEV_PICK, false)
    );
    let info = harness
        .table
        .association(SERVICE, client(2), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.addresses.to_vec(), [client(2)]);
    assert_eq!(info.primary, Some(client(2)));
    assert!(harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .is_none());
}

#[test]
fn asconf_with_an_unknown_tag_is_dropped() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let a1 = path(client(1), vip(100));
    let add = asconf(
        BACKEND_TAG ^ 1,
        client(1),
        &[(AsconfRequestKind::AddIp, client(3))],
    );
    assert_eq!(
        harness.decide(&a1, &add, 2),
        SctpDecision::Drop(DropReason::SctpUnknownAssociation)
    );
    assert_eq!(harness.addresses(client(1)), [client(1)]);
}

/// Closes the association with `closing` and checks it is freed at the linger's end,
/// not before, and that packets still pass during the linger.
fn frees_after_linger(closing: Vec<u8>) {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    let a1 = path(client(1), vip(100));
    let closed_at = 10;
    assert_eq!(
        harness.decide(&a1, &closing, closed_at),
        forward(MAGLEV_PICK, false)
    );
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(
        info.state,
        SctpAssociationState::Closing {
            until_ms: closed_at + LINGER_MS
        }
    );

    assert_eq!(harness.table.expire(closed_at + LINGER_MS - 1), 0);
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), closed_at + 1),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.table.expire(closed_at + LINGER_MS), 1);
    assert!(harness.table.is_empty());
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), closed_at + LINGER_MS + 1),
        SctpDecision::Drop(DropReason::SctpUnknownAssociation)
    );
    assert!(harness
        .table
        .association(SERVICE, client(2), CLIENT_PORT, SERVER_PORT)
        .is_none());
    let stats = harness.table.stats();
    assert_eq!((stats.created, stats.freed, stats.associations), (1, 1, 0));
}

#[test]
fn abort_with_the_backend_tag_frees_after_the_linger() {
    frees_after_linger(abort(BACKEND_TAG, false));
}

#[test]
fn abort_with_the_reflected_client_tag_frees_after_the_linger() {
    frees_after_linger(abort(CLIENT_TAG, true));
}

#[test]
fn shutdown_complete_frees_after_the_linger() {
    frees_after_linger(shutdown_complete(BACKEND_TAG, false));
}

#[test]
fn shutdown_complete_with_the_reflected_tag_frees_after_the_linger() {
    frees_after_linger(shutdown_complete(CLIENT_TAG, true));
}

#[test]
fn abort_with_a_wrong_tag_frees_nothing() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let a1 = path(client(1), vip(100));
    for wrong in [
        abort(BACKEND_TAG ^ 1, false),
        abort(CLIENT_TAG ^ 1, true),
        abort(BACKEND_TAG, true),
    ] {
        assert_eq!(
            harness.decide(&a1, &wrong, 2),
            SctpDecision::Drop(DropReason::SctpUnknownAssociation)
        );
    }
    assert_eq!(harness.table.expire(2 + LINGER_MS), 0);
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.state, SctpAssociationState::Established);
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), 3),
        forward(MAGLEV_PICK, false)
    );
}

#[test]
fn unknown_tag_is_dropped_never_hashed() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    for bytes in [data(0x1234), heartbeat(0x1234), data(0)] {
        assert_eq!(
            harness.decide(&a1, &bytes, 0),
            SctpDecision::Drop(DropReason::SctpUnknownAssociation)
        );
    }
    assert_eq!(harness.maglev_calls.get(), 0);
    assert_eq!(harness.table.stats().created, 0);
    assert!(harness.table.is_empty());
}

#[test]
fn init_listing_an_ipv6_address() {
    let harness = Harness::new(16);
    harness.establish(&[client_v6(2)]);
    assert_eq!(harness.addresses(client_v6(2)), [client(1), client_v6(2)]);
    let v6_path = path(client_v6(2), vip_v6());
    assert_eq!(
        harness.decide(&v6_path, &heartbeat(BACKEND_TAG), 2),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.decide(&v6_path, &abort(CLIENT_TAG, true), 3),
        forward(MAGLEV_PICK, false)
    );
}

#[test]
fn addresses_are_capped_at_eight() {
    let harness = Harness::new(16);
    let listed: Vec<IpAddr> = (2..=11).map(client).collect();
    harness.establish(&listed);
    let recorded = harness.addresses(client(1));
    assert_eq!(recorded, (1..=8).map(client).collect::<Vec<_>>());
    assert_eq!(harness.table.stats().addresses_refused, 3);
    // An ASCONF Add-IP beyond the cap is forwarded but not recorded.
    let a1 = path(client(1), vip(100));
    let add = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(20))],
    );
    assert_eq!(harness.decide(&a1, &add, 2), forward(MAGLEV_PICK, false));
    assert!(harness
        .table
        .association(SERVICE, client(20), CLIENT_PORT, SERVER_PORT)
        .is_none());
    assert_eq!(harness.table.stats().addresses_refused, 4);
}

#[test]
fn a_table_full_of_established_associations_refuses_new_ones() {
    let harness = Harness::new(2);
    for last in 1..=2 {
        let p = path(client(last), vip(100));
        assert_eq!(
            harness.decide(&p, &init(u32::from(last), &[]), 0),
            forward(MAGLEV_PICK, true)
        );
        assert_eq!(
            harness.decide(&p, &cookie_echo(u32::from(last) << 8), 0),
            forward(MAGLEV_PICK, false)
        );
    }
    let third = path(client(3), vip(100));
    assert_eq!(
        harness.decide(&third, &init(3, &[]), 0),
        SctpDecision::Drop(DropReason::SctpTableFull)
    );
    assert_eq!(
        harness.maglev_calls.get(),
        2,
        "a full table does not run Maglev"
    );
    assert_eq!(harness.table.stats().table_full, 1);
    // Idle records expire and make room.
    assert_eq!(harness.table.expire(IDLE_MS), 2);
    assert_eq!(
        harness.decide(&third, &init(3, &[]), IDLE_MS),
        forward(MAGLEV_PICK, true)
    );
}

#[test]
fn a_removed_backend_drops_and_frees_the_association() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    let a2 = path(client(2), vip(101));
    let gone = |backend| backend != MAGLEV_PICK;
    assert_eq!(
        harness.decide_with(&a2, &data(BACKEND_TAG), 2, gone),
        SctpDecision::Drop(DropReason::SctpBackendGone)
    );
    assert!(harness.table.is_empty());
    assert_eq!(
        harness.decide(&a2, &data(BACKEND_TAG), 3),
        SctpDecision::Drop(DropReason::SctpUnknownAssociation)
    );
    // The client's next INIT is hashed afresh.
    let a1 = path(client(1), vip(100));
    assert_eq!(
        harness.decide(&a1, &init(CLIENT_TAG, &[]), 4),
        forward(MAGLEV_PICK, true)
    );
}

#[test]
fn idle_associations_expire() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let a1 = path(client(1), vip(100));
    let later = 1 + IDLE_MS / 2;
    assert_eq!(
        harness.decide(&a1, &data(BACKEND_TAG), later),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.table.expire(later + IDLE_MS - 1),
        0,
        "traffic refreshed it"
    );
    assert_eq!(harness.table.expire(later + IDLE_MS), 1);
}

#[test]
fn no_backend_in_the_service_drops_the_init() {
    let table = table(4);
    let a1 = path(client(1), vip(100));
    let decision = table.decide(&a1, &init(CLIENT_TAG, &[]), 0, || None, |_| true);
    assert_eq!(decision, SctpDecision::Drop(DropReason::NoBackend));
    assert!(table.is_empty());
}

#[test]
fn malformed_chunks_are_dropped() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    let mut bad_length = init(CLIENT_TAG, &[]);
    bad_length[14..16].copy_from_slice(&3u16.to_be_bytes());
    let mut nonzero_tag = init(CLIENT_TAG, &[]);
    nonzero_tag[4] = 1;
    let mut past_end = data(BACKEND_TAG);
    past_end[14..16].copy_from_slice(&200u16.to_be_bytes());
    for bytes in [
        &bad_length[..],
        &nonzero_tag[..],
        &past_end[..],
        &[0u8; 11][..],
        &[0u8; 12][..],
    ] {
        assert_eq!(
            harness.decide(&a1, bytes, 0),
            SctpDecision::Drop(DropReason::SctpMalformed)
        );
    }
    assert_eq!(harness.maglev_calls.get(), 0);
}

#[test]
fn data_is_never_checksummed() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let a1 = path(client(1), vip(100));
    let mut zero = data(BACKEND_TAG);
    zero[8..12].fill(0);
    let mut wrong = data(BACKEND_TAG);
    wrong[8] ^= 0xff;
    assert_eq!(harness.decide(&a1, &zero, 2), forward(MAGLEV_PICK, false));
    assert_eq!(harness.decide(&a1, &wrong, 2), forward(MAGLEV_PICK, false));
}

#[test]
fn the_table_is_shared_across_threads() {
    let harness = Harness::new(64);
    harness.establish(&[]);
    let table = &harness.table;
    std::thread::scope(|scope| {
        for worker in 0..4u64 {
            scope.spawn(move || {
                let a1 = path(client(1), vip(100));
                for now in 0..1_000 {
                    let decision = table.decide(
                        &a1,
                        &data(BACKEND_TAG),
                        worker * 1_000 + now,
                        || None,
                        |_| true,
                    );
                    assert_eq!(decision, forward(MAGLEV_PICK, false));
                }
            });
        }
    });
}

/// `bytes` with its CRC32c broken, or zeroed.
fn corrupted(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[8] ^= 0xff;
    bytes
}

fn zero_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[8..12].fill(0);
    bytes
}

/// An INIT announcing RFC 9653 zero checksums (the Zero Checksum Acceptable parameter,
/// 0x8001, with EDMID 1 for DTLS), CRC32c filled in.
fn init_accepting_zero_checksums(client_tag: u32) -> Vec<u8> {
    let mut bytes = init(client_tag, &[]);
    bytes.extend_from_slice(&[0x80, 0x01, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01]);
    let chunk_len = u16::from_be_bytes([bytes[14], bytes[15]]) + 8;
    bytes[14..16].copy_from_slice(&chunk_len.to_be_bytes());
    let mut packet = xlb::wire::sctp::Packet::new_unchecked(&mut bytes[..]);
    packet.fill_checksum();
    bytes
}

#[test]
fn state_changing_chunks_must_pass_crc32c() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    for bad in [
        corrupted(init(CLIENT_TAG, &[])),
        zero_checksum(init(CLIENT_TAG, &[])),
        corrupted(cookie_echo(BACKEND_TAG)),
    ] {
        assert_eq!(
            harness.decide(&a1, &bad, 0),
            SctpDecision::Drop(DropReason::SctpBadChecksum)
        );
    }
    assert!(harness.table.is_empty());
    harness.establish(&[]);
    let add = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(3))],
    );
    for bad in [
        corrupted(abort(BACKEND_TAG, false)),
        zero_checksum(abort(CLIENT_TAG, true)),
        corrupted(shutdown_complete(BACKEND_TAG, false)),
        corrupted(cookie_echo(BACKEND_TAG)),
        corrupted(add),
    ] {
        assert_eq!(
            harness.decide(&a1, &bad, 2),
            SctpDecision::Drop(DropReason::SctpBadChecksum)
        );
    }
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.state, SctpAssociationState::Established);
    assert_eq!(info.addresses.to_vec(), [client(1)]);
}

#[test]
fn zero_checksums_pass_only_where_the_client_announced_rfc_9653() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    assert_eq!(
        harness.decide(&a1, &init_accepting_zero_checksums(CLIENT_TAG), 0),
        forward(MAGLEV_PICK, true)
    );
    assert_eq!(
        harness.decide(&a1, &zero_checksum(cookie_echo(BACKEND_TAG)), 1),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.decide(&a1, &zero_checksum(abort(BACKEND_TAG, false)), 2),
        forward(MAGLEV_PICK, false)
    );
    // A wrong non-zero checksum is still wrong.
    let b1 = path(client(2), vip(100));
    harness.decide(&b1, &init_accepting_zero_checksums(CLIENT_TAG + 1), 3);
    assert_eq!(
        harness.decide(&b1, &corrupted(cookie_echo(BACKEND_TAG + 1)), 4),
        SctpDecision::Drop(DropReason::SctpBadChecksum)
    );
}

#[test]
fn state_changing_chunks_from_a_foreign_address_are_dropped() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    // The attacker knows the backend's tag but sends from an address the
    // association never listed.
    let stranger = path(client(9), vip(100));
    let add = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(3))],
    );
    for bytes in [
        abort(BACKEND_TAG, false),
        abort(CLIENT_TAG, true),
        shutdown_complete(BACKEND_TAG, false),
        cookie_echo(BACKEND_TAG),
        add,
    ] {
        assert_eq!(
            harness.decide(&stranger, &bytes, 2),
            SctpDecision::Drop(DropReason::SctpForeignAddress)
        );
    }
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.state, SctpAssociationState::Established);
    assert_eq!(info.addresses.to_vec(), [client(1), client(2)]);
    // A listed address may close it.
    assert_eq!(
        harness.decide(&path(client(2), vip(101)), &abort(BACKEND_TAG, false), 3),
        forward(MAGLEV_PICK, false)
    );
}

#[test]
fn asconf_sent_from_the_address_it_adds_is_accepted() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let from_a5 = path(client(5), vip(101));
    let add_self = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(5))],
    );
    assert_eq!(
        harness.decide(&from_a5, &add_self, 2),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(harness.addresses(client(5)), [client(1), client(5)]);
    // Adding some other address from an unlisted source is refused.
    let from_a6 = path(client(6), vip(101));
    let add_other = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(7))],
    );
    assert_eq!(
        harness.decide(&from_a6, &add_other, 3),
        SctpDecision::Drop(DropReason::SctpForeignAddress)
    );
}

/// The attack of issue 12: an off-path attacker who knows only the client's address
/// and port sends COOKIE-ECHO with a tag of its choosing, then ABORT with the T bit
/// and that tag (and other variants). The live association keeps its tag and backend.
#[test]
fn a_blind_attacker_cannot_tear_down_or_steal_a_live_association() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    let a1 = path(client(1), vip(100));
    const FORGED: u32 = 0x5eed_f00d;
    let elsewhere = || Some(MAGLEV_PICK + 1);
    // COOKIE-ECHO with a forged tag: placed with the live association's backend as a
    // record of its own; the live tag is untouched.
    let forged_cookie = harness
        .table
        .decide(&a1, &cookie_echo(FORGED), 2, elsewhere, |_| true);
    assert_eq!(forged_cookie, forward(MAGLEV_PICK, true));
    for bytes in [
        abort(FORGED, true),
        shutdown_complete(FORGED, true),
        abort(CLIENT_TAG ^ 0x10, true),
    ] {
        assert_eq!(
            harness.decide(&a1, &bytes, 3),
            SctpDecision::Drop(DropReason::SctpUnknownAssociation)
        );
    }
    // A spoofed INIT from the client's address goes where the state is, and leaves
    // the live association alone; so does its T-bit ABORT.
    assert_eq!(
        harness
            .table
            .decide(&a1, &init(0xbad, &[]), 4, elsewhere, |_| true),
        forward(MAGLEV_PICK, true)
    );
    assert_eq!(
        harness.decide(&a1, &abort(0xbad, true), 5),
        forward(MAGLEV_PICK, false)
    );
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(info.state, SctpAssociationState::Established);
    assert_eq!(info.backend_tag, Some(BACKEND_TAG));
    assert_eq!(harness.table.expire(5 + LINGER_MS + 1), 0);
    for from in [path(client(1), vip(100)), path(client(2), vip(101))] {
        assert_eq!(
            harness.decide(&from, &data(BACKEND_TAG), 6),
            forward(MAGLEV_PICK, false)
        );
    }
}

#[test]
fn a_peer_restart_goes_to_the_associations_backend_and_both_tags_route() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    let elsewhere = || Some(MAGLEV_PICK + 1);
    //# RFC 9260 §5.2: unexpected INIT [...] from the peer, e.g. after a restart.
    let a1 = path(client(1), vip(100));
    const RESTARTED: u32 = 0x0000_0e57;
    const NEW_BACKEND_TAG: u32 = 0x0000_ba57;
    assert_eq!(
        harness
            .table
            .decide(&a1, &init(RESTARTED, &[client(2)]), 10, elsewhere, |_| true),
        forward(MAGLEV_PICK, true)
    );
    assert_eq!(
        harness.decide(&a1, &cookie_echo(NEW_BACKEND_TAG), 11),
        forward(MAGLEV_PICK, false)
    );
    let info = harness
        .table
        .association(SERVICE, client(1), CLIENT_PORT, SERVER_PORT)
        .unwrap();
    assert_eq!(
        info.backend_tag,
        Some(NEW_BACKEND_TAG),
        "the newest owns the path"
    );
    for tag in [BACKEND_TAG, NEW_BACKEND_TAG] {
        assert_eq!(
            harness.decide(&path(client(2), vip(101)), &data(tag), 12),
            forward(MAGLEV_PICK, false)
        );
    }
    assert_eq!(harness.maglev_calls.get(), 1);
}

#[test]
fn an_init_from_an_address_a_live_association_lists_goes_to_its_backend() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    let elsewhere = || Some(MAGLEV_PICK + 1);
    // From the listed address itself, and from a new address listing it.
    for (from, listed) in [(client(2), vec![]), (client(7), vec![client(2)])] {
        assert_eq!(
            harness.table.decide(
                &path(from, vip(101)),
                &init(0x77, &listed),
                2,
                elsewhere,
                |_| true
            ),
            forward(MAGLEV_PICK, true)
        );
    }
    // A stranger is placed by Maglev.
    assert_eq!(
        harness.table.decide(
            &path(client(8), vip(100)),
            &init(0x88, &[]),
            3,
            elsewhere,
            |_| true
        ),
        forward(MAGLEV_PICK + 1, true)
    );
}

#[test]
fn embryonic_records_expire_on_their_own_timer() {
    let harness = Harness::new(16);
    let a1 = path(client(1), vip(100));
    harness.decide(&a1, &init(CLIENT_TAG, &[]), 0);
    assert_eq!(harness.table.stats().embryonic, 1);
    assert_eq!(harness.table.expire(EMBRYONIC_MS - 1), 0);
    assert_eq!(harness.table.expire(EMBRYONIC_MS), 1);
    let stats = harness.table.stats();
    assert_eq!((stats.embryonic, stats.embryonic_expired), (0, 1));
    assert!(harness.table.is_empty());
    // A completed handshake is no longer on the embryonic timer.
    harness.establish(&[]);
    assert_eq!(harness.table.expire(EMBRYONIC_MS * 3), 0);
    assert_eq!(harness.table.stats().embryonic, 0);
}

#[test]
fn embryonic_records_are_limited_per_source() {
    let harness = Harness::new(64);
    for port in 0..EMBRYONIC_PER_SOURCE {
        let p = SctpPath {
            src_port: 6000 + port as u16,
            ..path(client(1), vip(100))
        };
        assert_eq!(
            harness.decide(&p, &init(port + 1, &[]), 0),
            forward(MAGLEV_PICK, true)
        );
    }
    let one_more = SctpPath {
        src_port: 7000,
        ..path(client(1), vip(100))
    };
    assert_eq!(
        harness.decide(&one_more, &init(99, &[]), 0),
        SctpDecision::Drop(DropReason::SctpInitLimit)
    );
    // Other sources are not affected, and a completed handshake frees the share.
    assert_eq!(
        harness.decide(&path(client(2), vip(100)), &init(98, &[]), 0),
        forward(MAGLEV_PICK, true)
    );
    let first = SctpPath {
        src_port: 6000,
        ..path(client(1), vip(100))
    };
    assert_eq!(
        harness.decide(&first, &cookie_echo(BACKEND_TAG), 1),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.decide(&one_more, &init(99, &[]), 1),
        forward(MAGLEV_PICK, true)
    );
}

/// An INIT flood from random sources never evicts an established association, and a
/// new real association still completes while the table is full of half-open ones.
#[test]
fn an_init_flood_evicts_only_embryonic_records() {
    let capacity = 32;
    let harness = Harness::new(capacity);
    harness.establish(&[client(2)]);
    let spoofed = |n: u32| {
        let address = IpAddr::V4(Ipv4Addr::from(0xc612_0000 | ((n & 0xffff) + 0x1000)));
        path(address, vip(100))
    };
    for n in 0..10_000u32 {
        assert_eq!(
            harness.decide(&spoofed(n), &init(n | 1, &[]), u64::from(n / 100)),
            forward(MAGLEV_PICK, true)
        );
    }
    let stats = harness.table.stats();
    assert_eq!(stats.associations, capacity);
    assert_eq!(stats.embryonic, capacity - 1);
    assert_eq!(stats.embryonic_evicted, 10_000 - (capacity as u64 - 1));
    assert_eq!(stats.table_full, 0);
    // The live association still flows.
    assert_eq!(
        harness.decide(&path(client(2), vip(101)), &data(BACKEND_TAG), 100),
        forward(MAGLEV_PICK, false)
    );
    // A new real client completes its handshake mid-flood.
    let real = SctpPath {
        src_port: 9000,
        ..path(client(5), vip(100))
    };
    assert_eq!(
        harness.decide(&real, &init(0x1234, &[]), 100),
        forward(MAGLEV_PICK, true)
    );
    assert_eq!(
        harness.decide(&real, &cookie_echo(0x4321), 100),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(
        harness.decide(&real, &data(0x4321), 101),
        forward(MAGLEV_PICK, false)
    );
}

#[test]
fn icmp_errors_find_the_association_by_the_quoted_client_tag_on_any_path() {
    let harness = Harness::new(16);
    harness.establish(&[client(2)]);
    for client_address in [client(1), client(2)] {
        assert_eq!(
            harness.table.backend_for_error(
                SERVICE,
                client_address,
                CLIENT_PORT,
                SERVER_PORT,
                CLIENT_TAG
            ),
            Some(MAGLEV_PICK)
        );
    }
    // Not this association's tag, or not one of its addresses.
    assert_eq!(
        harness
            .table
            .backend_for_error(SERVICE, client(1), CLIENT_PORT, SERVER_PORT, 0x1),
        None
    );
    assert_eq!(
        harness
            .table
            .backend_for_error(SERVICE, client(3), CLIENT_PORT, SERVER_PORT, CLIENT_TAG),
        None
    );
}

#[test]
fn associations_are_counted_per_backend() {
    let harness = Harness::new(16);
    harness.establish(&[]);
    let other = SctpPath {
        src_port: 7000,
        ..path(client(3), vip(100))
    };
    harness
        .table
        .decide(&other, &cookie_echo(0x99), 0, || Some(3), |_| true);
    assert_eq!(
        harness.table.associations_by_backend(),
        vec![(3, 1), (MAGLEV_PICK, 1)]
    );
    let gone = |backend| backend != 3;
    assert_eq!(
        harness.decide_with(&other, &data(0x99), 1, gone),
        SctpDecision::Drop(DropReason::SctpBackendGone)
    );
    assert_eq!(
        harness.table.associations_by_backend(),
        vec![(MAGLEV_PICK, 1)]
    );
    assert_eq!(harness.table.stats().backend_gone, 1);
}

/// Service table text: `above` services first, then the multihomed `ngap` service
/// with backends amf-1..amf-3.
fn reload_table(above: &str, amf: &[&str]) -> xlb::config::ServiceTable {
    let backends: String = amf
        .iter()
        .map(|name| {
            format!(
                "      - {{ name: {name}, address: 198.18.1.2{} }}\n",
                &name[4..]
            )
        })
        .collect();
    let yaml = format!(
        "version: 1\ndataplane:\n  interfaces: [{{ name: eth0 }}]\n  maglev_table_size: 1009\n\
         services:\n{above}  - name: ngap\n    vips: [198.18.100.20, 198.18.101.20]\n\
         \x20   protocol: sctp\n    ports: [38412]\n    forwarding: dsr\n    backends:\n{backends}"
    );
    xlb::config::parse(&yaml, "reload.yaml").expect("valid table")
}

const WEB_ABOVE: &str = "  - name: web\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends:\n      - { name: w1, address: 198.18.1.31 }\n";

/// Issue 12's reload: a new service listed above the SCTP service must not strand its
/// associations; a reweighted or drained backend keeps them; a removed one ends them.
#[test]
fn associations_survive_reloads_that_keep_their_service_and_backend() {
    use xlb::lb::balancer::{Balancer, Decision};
    use xlb::lb::flow::FlowTimeouts;
    use xlb::lb::snapshot::{DownBackends, Snapshot, StaticResolver};

    let resolver = StaticResolver {
        port_macs: vec![[0; 6]],
        egress: 0,
    };
    let none = DownBackends::new();
    let amf = ["amf-1", "amf-2", "amf-3"];
    let gen1 = Snapshot::build(&reload_table("", &amf), 1, None, &resolver, &none).unwrap();
    let table = table(64);
    let mut balancer = Balancer::new(
        1024,
        FlowTimeouts {
            tcp_idle_ms: IDLE_MS,
            udp_idle_ms: IDLE_MS,
            sctp_idle_ms: IDLE_MS,
            tcp_closing_ms: LINGER_MS,
            tcp_syn_ms: LINGER_MS,
            new_flows_per_sec: 1_000_000,
        },
    );
    let ngap = |snapshot: &Snapshot| {
        snapshot
            .services()
            .iter()
            .position(|s| s.name == "ngap")
            .unwrap() as u32
    };
    let vip1: IpAddr = "198.18.100.20".parse().unwrap();
    let mut decide = |snapshot: &Snapshot, client_port: u16, bytes: &[u8], now: u64| {
        let decision = balancer.decide_sctp(
            snapshot,
            &table,
            ngap(snapshot),
            client(1),
            vip1,
            (client_port, SERVER_PORT),
            bytes,
            u64::from(client_port).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            now,
        );
        match decision {
            Decision::Backend(id) => snapshot.backend(id).expect("live").name.clone(),
            Decision::Drop(reason) => format!("dropped: {}", reason.name()),
        }
    };
    // Forty associations, one per client port.
    let ports: Vec<u16> = (5000..5040).collect();
    let owners: Vec<String> = ports
        .iter()
        .map(|&port| {
            let repr = |tag, chunks: &[ChunkRepr<'_>]| {
                PacketRepr {
                    src_port: port,
                    dst_port: SERVER_PORT,
                    verification_tag: tag,
                    chunks,
                }
                .to_vec()
            };
            let init = repr(
                0,
                &[ChunkRepr::Init {
                    initiate_tag: u32::from(port),
                    a_rwnd: 65536,
                    outbound_streams: 1,
                    inbound_streams: 1,
                    initial_tsn: 1,
                    addresses: &[],
                }],
            );
            let owner = decide(&gen1, port, &init, 0);
            let echo = repr(
                u32::from(port) << 16,
                &[ChunkRepr::CookieEcho { cookie: b"c" }],
            );
            assert_eq!(decide(&gen1, port, &echo, 1), owner);
            owner
        })
        .collect();
    let data_from = |port: u16| {
        PacketRepr {
            src_port: port,
            dst_port: SERVER_PORT,
            verification_tag: u32::from(port) << 16,
            chunks: &[ChunkRepr::Data {
                tsn: 2,
                stream_id: 0,
                stream_seq: 0,
                ppid: 60,
                payload: b"x",
            }],
        }
        .to_vec()
    };
    // Reload: `web` listed above, amf-2 reweighted.
    let mut reordered = reload_table(WEB_ABOVE, &amf);
    reordered.services[1].backends[1].weight = 300;
    let gen2 = Snapshot::build(&reordered, 2, Some(&gen1), &resolver, &none).unwrap();
    assert_ne!(ngap(&gen1), ngap(&gen2), "the service moved in the file");
    for (port, owner) in ports.iter().zip(&owners) {
        assert_eq!(&decide(&gen2, *port, &data_from(*port), 2), owner);
    }
    // amf-3 is drained: it keeps its associations.
    let mut drained = reordered.clone();
    drained.services[1].backends[2].state = xlb::config::BackendState::Drain;
    let gen3 = Snapshot::build(&drained, 3, Some(&gen2), &resolver, &none).unwrap();
    for (port, owner) in ports.iter().zip(&owners) {
        assert_eq!(&decide(&gen3, *port, &data_from(*port), 3), owner);
    }
    // amf-1 is removed: its associations end, counted; the others stay.
    let gen4 = Snapshot::build(
        &reload_table(WEB_ABOVE, &["amf-2", "amf-3"]),
        4,
        Some(&gen3),
        &resolver,
        &none,
    )
    .unwrap();
    let on_amf1 = owners.iter().filter(|o| *o == "amf-1").count();
    assert!(on_amf1 > 0 && on_amf1 < owners.len());
    for (port, owner) in ports.iter().zip(&owners) {
        let now = decide(&gen4, *port, &data_from(*port), 4);
        if owner == "amf-1" {
            assert_eq!(now, "dropped: sctp_backend_gone");
        } else {
            assert_eq!(&now, owner);
        }
    }
    assert_eq!(table.stats().backend_gone, on_amf1 as u64);
}

// Replication between nodes (src/lb/sctp/replica.rs): node A saw the handshake, node B
// adopts what A exports.

/// Everything node A exports now, changes first.
fn exported(from: &Harness) -> Vec<SctpReplica> {
    let mut out = Vec::new();
    from.table.export_changed(&mut out, usize::MAX);
    out
}

#[test]
fn an_adopted_association_routes_a_second_path_on_another_node() {
    let (a, b) = (Harness::new(16), Harness::new(16));
    a.establish(&[client(2)]);
    let replicas = exported(&a);
    assert_eq!(replicas.len(), 1, "the established association, once");
    assert_eq!(replicas[0].backend_tag, BACKEND_TAG);
    assert_eq!(replicas[0].client_tag, Some(CLIENT_TAG));
    assert!(exported(&a).is_empty(), "exported changes are not repeated");

    // Before adoption, B has never heard of the tag: a miss is never hashed.
    let a2_to_vip2 = path(client(2), vip(101));
    assert_eq!(
        b.decide(&a2_to_vip2, &data(BACKEND_TAG), 2),
        SctpDecision::Drop(DropReason::SctpUnknownAssociation)
    );
    assert_eq!(b.table.adopt(&replicas[0], 3), Adopted::Created);
    assert_eq!(
        b.decide(&a2_to_vip2, &data(BACKEND_TAG), 4),
        forward(MAGLEV_PICK, false)
    );
    assert_eq!(b.maglev_calls.get(), 0, "B placed nothing by hash");
    // The client's tag came along: a reflected ABORT closes it on B too.
    assert_eq!(
        b.decide(&a2_to_vip2, &abort(CLIENT_TAG, true), 5),
        forward(MAGLEV_PICK, false)
    );
    let from_b = exported(&b);
    assert_eq!(
        from_b.len(),
        1,
        "B exports its own change, not the adoption"
    );
    assert!(from_b[0].closing);
}

#[test]
fn address_changes_and_closes_travel_and_duplicates_are_harmless() {
    let (a, b) = (Harness::new(16), Harness::new(16));
    a.establish(&[]);
    let first = exported(&a);
    let a1 = path(client(1), vip(100));
    let add = asconf(
        BACKEND_TAG,
        client(1),
        &[(AsconfRequestKind::AddIp, client(3))],
    );
    a.decide(&a1, &add, 2);
    let added = exported(&a);
    assert_eq!(added[0].addresses.to_vec(), [client(1), client(3)]);

    // Reordered and duplicated: the older replica after the newer one, twice.
    assert_eq!(b.table.adopt(&added[0], 3), Adopted::Created);
    assert_eq!(b.table.adopt(&first[0], 3), Adopted::Refreshed);
    assert_eq!(b.table.adopt(&added[0], 4), Adopted::Refreshed);
    assert_eq!(b.table.len(), 1);
    assert_eq!(b.addresses(client(3)), [client(1), client(3)]);

    a.decide(&a1, &shutdown_complete(BACKEND_TAG, false), 5);
    let closed = exported(&a);
    assert!(closed[0].closing);
    assert_eq!(b.table.adopt(&closed[0], 6), Adopted::Refreshed);
    b.table.expire(6 + LINGER_MS + 1);
    assert!(
        b.table.is_empty(),
        "the close lingers, then frees, on B as on A"
    );
}

#[test]
fn adoption_keeps_the_backend_packets_already_went_to() {
    let (a, b) = (Harness::new(16), Harness::new(16));
    a.establish(&[]);
    let mut replica = exported(&a).remove(0);
    b.establish(&[]);
    replica.backend = MAGLEV_PICK + 1;
    assert_eq!(b.table.adopt(&replica, 2), Adopted::Conflict);
    assert_eq!(
        b.decide(&path(client(1), vip(100)), &data(BACKEND_TAG), 3),
        forward(MAGLEV_PICK, false)
    );
}

#[test]
fn adoption_never_evicts_an_established_association() {
    let (a, b) = (Harness::new(16), Harness::new(1));
    a.establish(&[]);
    let replica = exported(&a).remove(0);
    let other = path(client(9), vip(100));
    b.decide(&other, &init(0x1234, &[]), 0);
    b.decide(&other, &cookie_echo(0x5678), 1);
    assert_eq!(b.table.adopt(&replica, 2), Adopted::TableFull);
    assert_eq!(
        b.decide(&other, &data(0x5678), 3),
        forward(MAGLEV_PICK, false)
    );
}

#[test]
fn embryonic_records_are_not_exported_and_a_full_walk_covers_the_table() {
    let a = Harness::new(64);
    for n in 0..10u8 {
        let p = path(client(10 + n), vip(100));
        a.decide(&p, &init(0x100 + u32::from(n), &[]), 0);
        if n % 2 == 0 {
            a.decide(&p, &cookie_echo(0x200 + u32::from(n)), 1);
        }
    }
    assert_eq!(exported(&a).len(), 5, "only the established half");
    let (mut all, mut from) = (Vec::new(), 0);
    loop {
        from = a.table.export_slice(from, 2, &mut all);
        if from == 0 {
            break;
        }
    }
    assert_eq!(all.len(), 5);
}

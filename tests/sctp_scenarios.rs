//! SCTP multihoming scenarios (DESIGN §5) driven through `SctpAssociationTable::decide`
//! with real SCTP bytes built by `wire::sctp`'s emitters.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xlb::lb::sctp::{
    SctpAssociationState, SctpAssociationTable, SctpConfig, SctpDecision, SctpPath,
};
use xlb::pipeline::verdict::DropReason;
use xlb::wire::sctp::{AsconfRequest, AsconfRequestKind, ChunkRepr, PacketRepr};

const SERVICE: u32 = 1;
const CLIENT_PORT: u16 = 5000;
const SERVER_PORT: u16 = 38412;
const CLIENT_TAG: u32 = 0x0c11_e017;
const BACKEND_TAG: u32 = 0x0bac_0e17;
const LINGER_MS: u64 = 1_000;
const IDLE_MS: u64 = 60_000;
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
    // A reflected ABORT from the deleted address no longer finds the association.
    let a3 = path(client(3), vip(100));
    assert_eq!(
        harness.decide(&a3, &abort(CLIENT_TAG, true), 3),
        SctpDecision::Drop(DropReason::SctpUnknownAssociation)
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
fn a_full_table_refuses_new_associations() {
    let harness = Harness::new(2);
    for last in 1..=2 {
        let p = path(client(last), vip(100));
        assert_eq!(
            harness.decide(&p, &init(u32::from(last), &[]), 0),
            forward(MAGLEV_PICK, true)
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
fn bad_or_zero_checksums_are_never_dropped() {
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

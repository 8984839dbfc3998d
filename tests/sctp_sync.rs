//! SCTP sync between two nodes over real UDP sockets on loopback (src/control/sync):
//! what node A's packets establish reaches node B, through a link that loses,
//! duplicates and reorders datagrams, and across a partition; a node that restarts
//! empty catches up from its peer before it serves; a datagram under another key or a
//! replayed one is refused.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use xlb::config::{self, SctpSyncConfig, ServiceTable};
use xlb::control::sync::ClusterSync;
use xlb::lb::sctp::{SctpDecision, SctpPath};
use xlb::lb::snapshot::{DownBackends, Snapshot, StaticResolver};
use xlb::pipeline::stage::SharedTables;
use xlb::wire::sctp::{ChunkRepr, PacketRepr};

const TABLE: &str = r#"version: 1
dataplane:
  interfaces: [{ name: eth0 }]
  maglev_table_size: 1009
  sctp: { capacity: 4096 }
services:
  - name: ngap
    vips: [198.18.100.20]
    protocol: sctp
    ports: [38412]
    forwarding: dsr
    backends:
      - { name: amf-1, address: 198.18.1.11, mac: "02:00:00:00:01:11" }
      - { name: amf-2, address: 198.18.1.12, mac: "02:00:00:00:01:12" }
"#;

/// One node's tables and its view of the service table.
struct Node {
    shared: Arc<SharedTables>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    epoch: Instant,
}

impl Node {
    fn new(table: &ServiceTable) -> Node {
        let resolver = StaticResolver {
            port_macs: vec![[2, 0, 0, 0, 0, 2]],
            egress: 0,
        };
        let snapshot = Snapshot::build(table, 1, None, &resolver, &DownBackends::new())
            .expect("the table builds");
        Node {
            shared: Arc::new(SharedTables::for_table(&table.dataplane)),
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            epoch: Instant::now(),
        }
    }

    fn sync(
        &self,
        listen: SocketAddr,
        peer: SocketAddr,
        key_file: &std::path::Path,
    ) -> ClusterSync {
        let config = SctpSyncConfig {
            listen,
            peers: vec![peer],
            key_file: key_file.to_path_buf(),
            full_resync: Duration::from_secs(1),
            catch_up: Duration::from_secs(3),
        };
        let sync = ClusterSync::start(
            &config,
            self.shared.clone(),
            self.snapshot.clone(),
            self.epoch,
        )
        .expect("sync starts");
        sync.wait_caught_up();
        sync
    }

    fn path(&self, client: u8) -> SctpPath {
        SctpPath {
            service: self.snapshot.load().services()[0].id,
            src: [198, 18, 0, client].into(),
            dst: [198, 18, 100, 20].into(),
            src_port: 5000,
            dst_port: 38412,
        }
    }

    /// INIT then COOKIE-ECHO from client address `client`: an established association
    /// whose backend tag is `0xb000 + client`, placed on `backend`'s id.
    fn establish(&self, client: u8, backend: usize) -> u32 {
        let path = self.path(client);
        let backend_id = self.snapshot.load().services()[0].backend_ids[backend];
        let now = self.epoch.elapsed().as_millis() as u64;
        let init = packet(
            0,
            &[ChunkRepr::Init {
                initiate_tag: 0xc000 + u32::from(client),
                a_rwnd: 65535,
                outbound_streams: 1,
                inbound_streams: 1,
                initial_tsn: 1,
                addresses: &[],
            }],
        );
        let cookie = packet(
            0xb000 + u32::from(client),
            &[ChunkRepr::CookieEcho { cookie: b"c" }],
        );
        for bytes in [init, cookie] {
            let decision =
                self.shared
                    .sctp
                    .decide(&path, &bytes, now, || Some(backend_id), |_| true);
            assert!(
                matches!(decision, SctpDecision::Forward { .. }),
                "{decision:?}"
            );
        }
        backend_id
    }

    /// Where this node sends DATA of the association of `client`, if anywhere.
    fn routes(&self, client: u8) -> Option<u32> {
        let data = packet(
            0xb000 + u32::from(client),
            &[ChunkRepr::Data {
                tsn: 1,
                stream_id: 0,
                stream_seq: 0,
                ppid: 60,
                payload: b"ngap",
            }],
        );
        let now = self.epoch.elapsed().as_millis() as u64;
        match self
            .shared
            .sctp
            .decide(&self.path(client), &data, now, || None, |_| true)
        {
            SctpDecision::Forward { backend, .. } => Some(backend),
            SctpDecision::Drop(_) => None,
        }
    }
}

fn packet(tag: u32, chunks: &[ChunkRepr<'_>]) -> Vec<u8> {
    PacketRepr {
        src_port: 5000,
        dst_port: 38412,
        verification_tag: tag,
        chunks,
    }
    .to_vec()
}

fn free_addr() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn key_file(name: &str, secret: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("xlb-sync-{name}-{}", std::process::id()));
    std::fs::write(&path, secret).unwrap();
    path
}

/// Waits up to 10 s for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A UDP link between two sync sockets that drops a third of the datagrams, sends a
/// tenth twice, and holds a tenth back behind the next one, at random.
struct LossyLink {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl LossyLink {
    /// Node A talks to `a_side`, node B to `b_side`; the link forwards between them.
    fn start(a: SocketAddr, a_side: SocketAddr, b: SocketAddr, b_side: SocketAddr) -> LossyLink {
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = [
            UdpSocket::bind(a_side).unwrap(),
            UdpSocket::bind(b_side).unwrap(),
        ];
        let threads = [(0, 1, b), (1, 0, a)]
            .into_iter()
            .map(|(from, to, destination)| {
                let inbound = sockets[from].try_clone().unwrap();
                let outbound = sockets[to].try_clone().unwrap();
                inbound
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut held: Option<Vec<u8>> = None;
                    let mut random = 0x9e37_79b9_7f4a_7c15u64 ^ from as u64;
                    let mut buffer = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(len) = inbound.recv(&mut buffer) else {
                            continue;
                        };
                        // xorshift64: a fixed seed, so a failure reproduces.
                        random ^= random << 13;
                        random ^= random >> 7;
                        random ^= random << 17;
                        let roll = random % 30;
                        let datagram = buffer[..len].to_vec();
                        if roll < 10 {
                            continue;
                        }
                        if roll < 13 {
                            held = Some(datagram);
                            continue;
                        }
                        let copies = if roll < 16 { 2 } else { 1 };
                        for _ in 0..copies {
                            let _ = outbound.send_to(&datagram, destination);
                        }
                        if let Some(late) = held.take() {
                            let _ = outbound.send_to(&late, destination);
                        }
                    }
                })
            })
            .collect();
        LossyLink { stop, threads }
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[test]
fn associations_reach_the_peer_through_loss_duplication_and_reordering() {
    let table = config::parse(TABLE, "sync.yaml").unwrap();
    let (a, b) = (Node::new(&table), Node::new(&table));
    let key = key_file("lossy", b"the cluster's shared secret, 32B");
    let (a_addr, a_side, b_addr, b_side) = (free_addr(), free_addr(), free_addr(), free_addr());
    let _link = LossyLink::start(a_addr, a_side, b_addr, b_side);
    let _sync_a = a.sync(a_addr, a_side, &key);
    let _sync_b = b.sync(b_addr, b_side, &key);

    let placed: Vec<(u8, u32)> = (1..=200u8)
        .map(|c| (c, a.establish(c, usize::from(c) % 2)))
        .collect();
    // A third of the changes are lost on the way; the next walk (every second) repairs.
    eventually("every association on B", || {
        placed
            .iter()
            .all(|&(client, backend)| b.routes(client) == Some(backend))
    });
    assert_eq!(b.shared.sctp.len(), 200, "duplicates made no extra records");
}

#[test]
fn a_node_back_from_a_partition_or_a_restart_catches_up_before_it_serves() {
    let table = config::parse(TABLE, "sync.yaml").unwrap();
    let a = Node::new(&table);
    let key = key_file("restart", b"the cluster's shared secret, 32B");
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let sync_a = a.sync(a_addr, b_addr, &key);
    // B is away (partitioned, or not started): A's changes to it are lost.
    for client in 1..=50u8 {
        a.establish(client, 0);
    }
    // B starts empty; before `sync` returns it holds what A has.
    let b = Node::new(&table);
    let sync_b = b.sync(b_addr, a_addr, &key);
    assert_eq!(sync_b.stats().caught_up.load(Ordering::Relaxed), 1);
    assert!(
        (1..=50u8).all(|client| b.routes(client).is_some()),
        "B served before catching up"
    );
    let silence = sync_b.stats().peer_silence();
    assert_eq!(silence.len(), 1);
    assert!(
        silence[0].1 < Duration::from_secs(2),
        "A was heard from just now: {silence:?}"
    );
    drop(sync_a);
    drop(sync_b);
}

#[test]
fn datagrams_under_another_key_are_refused() {
    let table = config::parse(TABLE, "sync.yaml").unwrap();
    let (a, b) = (Node::new(&table), Node::new(&table));
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let _sync_a = a.sync(
        a_addr,
        b_addr,
        &key_file("key-a", b"one cluster's secret, 32 bytes.."),
    );
    let sync_b = b.sync(
        b_addr,
        a_addr,
        &key_file("key-b", b"another cluster's secret, 32 byt"),
    );
    a.establish(1, 0);
    eventually("B to refuse A's datagrams", || {
        sync_b
            .stats()
            .rejected_authentication
            .load(Ordering::Relaxed)
            > 0
    });
    assert_eq!(b.routes(1), None);
    assert!(b.shared.sctp.is_empty());
}

//! The typed service table (docs/architecture.md §3): what the YAML file says, with defaults
//! filled in. Its serde and JSON Schema derives describe the file format; the
//! semantic checks live in `validate`.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::text;

/// The whole file: the dataplane's settings and the services it balances.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTable {
    /// How the dataplane binds NICs, runs workers and sizes its tables.
    pub dataplane: DataplaneConfig,
    /// The virtual services and their backends.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Route announcement of the VIPs through the node's routing daemon; absent: none.
    #[serde(default)]
    pub announce: Option<AnnounceConfig>,
}

/// The file as written: the schema version, then the table itself.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "xlb service table")]
pub(crate) struct Document {
    /// Schema version of this file; xlb reads version 1.
    pub(crate) version: SchemaVersion,
    /// How the dataplane binds NICs, runs workers and sizes its tables.
    pub(crate) dataplane: DataplaneConfig,
    /// The virtual services and their backends.
    #[serde(default)]
    pub(crate) services: Vec<Service>,
    /// Route announcement of the VIPs through the node's routing daemon; absent: none.
    #[serde(default)]
    pub(crate) announce: Option<AnnounceConfig>,
}

/// The only schema version this xlb reads; any other is refused while parsing.
pub(crate) struct SchemaVersion;

/// The schema version written in files this xlb reads.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// Refuses other versions inside the visitor, so the error carries the number's position.
impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl Visitor<'_> for VersionVisitor {
            type Value = SchemaVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "schema version {SCHEMA_VERSION}")
            }
            fn visit_u64<E: de::Error>(self, version: u64) -> Result<SchemaVersion, E> {
                if version == SCHEMA_VERSION {
                    Ok(SchemaVersion)
                } else {
                    Err(E::custom(format_args!(
                        "schema version {version} is not supported; this xlb reads version {SCHEMA_VERSION}"
                    )))
                }
            }
        }
        deserializer.deserialize_u64(VersionVisitor)
    }
}

impl JsonSchema for SchemaVersion {
    fn schema_name() -> Cow<'static, str> {
        "SchemaVersion".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "const": SCHEMA_VERSION })
    }
}

/// Settings of the packet path: NICs, workers, batch and ring sizes, table sizes.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// NICs (or veths) the dataplane binds with AF_XDP; at least one.
    pub interfaces: Vec<Interface>,
    /// Cores running workers: `auto` (per NUMA node, NIC-local cores) or a list of core ids.
    #[serde(default)]
    pub workers: Workers,
    /// How a worker waits when its rings are empty.
    #[serde(default)]
    pub idle: IdlePolicy,
    /// Pipeline to run: a name in `pipelines/` or a path.
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// Frames handled per batch (1..=256).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Entries in each AF_XDP ring: a power of two in 64..=16384.
    #[serde(default = "default_ring_size")]
    pub ring_size: u32,
    /// Size and timeouts of each worker's TCP/UDP flow table.
    #[serde(default)]
    pub flow_table: FlowTableConfig,
    /// Size and limits of the shared SCTP association table.
    #[serde(default)]
    pub sctp: SctpTableConfig,
    /// Slots in each service's Maglev table: a prime, at least 10 x the largest backend count.
    #[serde(default = "default_maglev_table_size")]
    pub maglev_table_size: u32,
    /// Address of the metrics HTTP endpoint.
    #[serde(default = "default_metrics_listen", deserialize_with = "text::one")]
    pub metrics_listen: SocketAddr,
    /// Outer source addresses and port for `ipip` and `gue` forwarding.
    #[serde(default)]
    pub encapsulation: Encapsulation,
    /// xlb-owned source addresses and ports for `nat` forwarding.
    #[serde(default)]
    pub nat: SnatConfig,
}

fn default_pipeline() -> String {
    "l4lb".to_owned()
}
fn default_batch_size() -> usize {
    64
}
fn default_ring_size() -> u32 {
    2048
}
fn default_maglev_table_size() -> u32 {
    65537
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9781))
}

/// Which cores run workers.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Workers {
    /// One worker per NIC-local core on each NUMA node, chosen from the topology.
    #[default]
    Auto,
    /// Exactly these core ids.
    Cores(Vec<usize>),
}

/// One word (`auto`/`all`) or a list of numbers: the YAML form of [`Workers`] and [`Queues`].
struct WordOrList<'a, T> {
    word: &'static str,
    expecting: &'a str,
    _item: std::marker::PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for WordOrList<'_, T> {
    type Value = Option<Vec<T>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, word: &str) -> Result<Self::Value, E> {
        if word == self.word {
            Ok(None)
        } else {
            Err(E::custom(format_args!(
                "{word:?} is not {}",
                self.expecting
            )))
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = WordOrList {
            word: "auto",
            expecting: "`auto` or a list of core ids like [2, 3]",
            _item: std::marker::PhantomData,
        };
        Ok(match deserializer.deserialize_any(visitor)? {
            None => Workers::Auto,
            Some(cores) => Workers::Cores(cores),
        })
    }
}

impl JsonSchema for Workers {
    fn schema_name() -> Cow<'static, str> {
        "Workers".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`auto` (per NUMA node, NIC-local cores) or a list of core ids.",
            "oneOf": [
                { "const": "auto" },
                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 }
            ]
        })
    }
}

/// How a worker waits when its rings are empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdlePolicy {
    /// Busy-poll while traffic flows, then back off and sleep on the socket when idle.
    #[default]
    Adaptive,
    /// Always busy-poll: lowest latency, one core at 100% per worker.
    Poll,
}

/// Sizes, idle timeouts and flood limits of each worker's TCP/UDP flow table.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FlowTableConfig {
    /// Flows tracked per worker; memory is allocated up front.
    pub capacity: usize,
    /// A TCP flow with no packet for this long is forgotten.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub tcp_idle: Duration,
    /// A UDP flow with no packet for this long is forgotten.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub udp_idle: Duration,
    /// An SCTP association with no packet for this long is forgotten.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub sctp_idle: Duration,
    /// Life left to a TCP flow after a RST, and to a NAT session once both sides sent FIN.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub tcp_closing: Duration,
    /// Idle life of a TCP flow whose client sent only SYNs: a SYN flood's entries go soon, and
    /// are the first evicted from a full bucket; they never evict an established flow.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub tcp_syn: Duration,
    /// New flows each worker stores per second; beyond it, new flows are forwarded by Maglev
    /// without an entry (same backend while the backend set holds).
    pub new_flows_per_second: u64,
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            capacity: 1_048_576,
            tcp_idle: Duration::from_secs(300),
            udp_idle: Duration::from_secs(30),
            sctp_idle: Duration::from_secs(300),
            tcp_closing: Duration::from_secs(10),
            tcp_syn: Duration::from_secs(5),
            new_flows_per_second: 200_000,
        }
    }
}

/// The largest `maglev_table_size` accepted: lookups index the table with 24 bits, and
/// every service holds one per generation, so larger tables only cost memory.
pub const MAGLEV_MAX_TABLE_SIZE: u32 = 1 << 24;

/// Whether `n` is prime: a Maglev table size must be (every skip coprime with it).
pub fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 || n % 3 == 0 {
        return false;
    }
    let n = u64::from(n);
    let mut divisor = 5u64;
    while divisor * divisor <= n {
        if n % divisor == 0 || n % (divisor + 2) == 0 {
            return false;
        }
        divisor += 6;
    }
    true
}

/// Most backends, summed over services, one table may list: ids index flat per-backend
/// counter arrays (Katran's `MAX_REALS` is the same idea).
pub const MAX_BACKENDS: usize = 4096;

/// Most VIPs and SNAT addresses one table may list: the `max_entries` of the steering
/// program's `vips` map (bpf/steer.c).
pub const MAX_STEERED_ADDRESSES: usize = 16384;

/// Most client addresses an SCTP association record stores (`sctp.max_addresses` is
/// validated against it): a multihomed peer rarely has more than four.
pub const SCTP_MAX_ADDRESSES: usize = 8;

/// Size and limits of the SCTP association table shared by all workers (docs/architecture.md §5).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SctpTableConfig {
    /// Associations tracked in total.
    pub capacity: usize,
    /// Client addresses remembered per association (1..=8); more are counted and ignored.
    pub max_addresses: usize,
    /// How long a record stays after ABORT or SHUTDOWN-COMPLETE, for stragglers.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub linger: Duration,
    /// How long an association whose INIT was seen waits for its COOKIE-ECHO before its
    /// record is freed; such records are also the first evicted when the table is full.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub embryonic_timeout: Duration,
    /// Most associations one client address may have waiting for their COOKIE-ECHO.
    pub embryonic_per_source: u32,
    /// Replication of established associations to the other nodes of a cluster
    /// (docs/deployment.md); off when absent.
    pub sync: Option<SctpSyncConfig>,
}

/// Replication of the SCTP association table between the nodes behind one ECMP group,
/// so every path of an association finds its backend on any node (docs/architecture.md §7).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SctpSyncConfig {
    /// This node's address and UDP port on the node network.
    #[serde(deserialize_with = "text::one")]
    pub listen: SocketAddr,
    /// Every other node's `listen` address.
    #[serde(deserialize_with = "text::list")]
    pub peers: Vec<SocketAddr>,
    /// A file holding the cluster's shared secret (at least 16 bytes, the same on every
    /// node, readable only by xlb): every datagram is authenticated with it.
    pub key_file: PathBuf,
    /// How often a node walks its whole table to its peers, refreshing their copies and
    /// repairing what lost datagrams missed; well under `flow_table.sctp_idle`.
    #[serde(default = "default_full_resync", deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub full_resync: Duration,
    /// How long a starting node waits for its peers' tables before it serves (and
    /// announces); a peer that does not answer in time is not waited for.
    #[serde(default = "default_catch_up", deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub catch_up: Duration,
}

fn default_full_resync() -> Duration {
    Duration::from_secs(10)
}

fn default_catch_up() -> Duration {
    Duration::from_secs(2)
}

impl Default for SctpTableConfig {
    fn default() -> Self {
        SctpTableConfig {
            capacity: 65536,
            max_addresses: 8,
            linger: Duration::from_secs(2),
            // An INIT retransmitted after RTO.Initial (1 s, RFC 9260 §16) and again
            // after 2 s still finds its record.
            embryonic_timeout: Duration::from_secs(5),
            embryonic_per_source: 256,
            sync: None,
        }
    }
}

/// Outer headers for `ipip` and `gue` forwarding.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Encapsulation {
    /// Outer source address towards IPv4 backends; needed when an ipip/gue service has one.
    #[serde(deserialize_with = "text::optional")]
    pub source_v4: Option<Ipv4Addr>,
    /// Outer source address towards IPv6 backends; needed when an ipip/gue service has one.
    #[serde(deserialize_with = "text::optional")]
    pub source_v6: Option<Ipv6Addr>,
    /// UDP destination port of GUE packets.
    pub gue_port: u16,
}

impl Default for Encapsulation {
    fn default() -> Self {
        Encapsulation {
            source_v4: None,
            source_v6: None,
            gue_port: 6080,
        }
    }
}

/// Source translation for `nat` forwarding.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SnatConfig {
    /// xlb-owned addresses used as the source towards backends (one per backend family used).
    #[serde(deserialize_with = "text::list")]
    pub addresses: Vec<IpAddr>,
    /// First and last source port handed out, as `[first, last]`.
    pub port_range: (u16, u16),
    /// A session its backend never answered (an unanswered SYN, one-way UDP) is freed
    /// after this long without a packet, when that is shorter than the protocol's
    /// idle time, so a SYN flood holds its ports for seconds, not for `tcp_idle`.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub unanswered_idle: Duration,
}

impl Default for SnatConfig {
    fn default() -> Self {
        SnatConfig {
            addresses: Vec::new(),
            port_range: (1024, 65535),
            unanswered_idle: Duration::from_secs(10),
        }
    }
}

/// How a node announces its VIPs (docs/deployment.md): xlb holds each servable VIP as a
/// host address on a TUN device of its own, which the node's routing daemon (BIRD's
/// `protocol direct`, FRR's `redistribute connected`) exports over BGP. The device dies
/// with the process, so a crash withdraws every VIP without clean-up code.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Whether VIPs are announced; `false` withdraws them all while xlb keeps forwarding
    /// (draining the node by a reload).
    pub enabled: bool,
    /// Name of the TUN device holding the announced VIPs, which the routing daemon
    /// watches; no other process may hold a device of that name.
    pub device: String,
    /// How long SIGTERM keeps forwarding after withdrawing every VIP, so the routers move
    /// the flows away before the dataplane stops.
    #[serde(deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    pub drain: Duration,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            enabled: true,
            device: "xlb-announce".to_owned(),
            drain: Duration::from_secs(2),
        }
    }
}

/// One NIC (or veth) the dataplane binds.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Kernel name of the interface, e.g. `eth1`.
    pub name: String,
    /// Which RX queues get an AF_XDP socket.
    #[serde(default)]
    pub queues: Queues,
    /// How the steering XDP program is attached.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// Whether AF_XDP zero-copy is used.
    #[serde(default)]
    pub zero_copy: ZeroCopy,
}

/// Which RX queues of an interface the dataplane serves.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Queues {
    /// Every combined/RX queue the NIC has.
    #[default]
    All,
    /// Exactly these queue ids.
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for Queues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = WordOrList {
            word: "all",
            expecting: "`all` or a list of queue ids like [0, 1]",
            _item: std::marker::PhantomData,
        };
        Ok(match deserializer.deserialize_any(visitor)? {
            None => Queues::All,
            Some(queues) => Queues::List(queues),
        })
    }
}

impl JsonSchema for Queues {
    fn schema_name() -> Cow<'static, str> {
        "Queues".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`all` or a list of RX queue ids.",
            "oneOf": [
                { "const": "all" },
                { "type": "array", "items": { "type": "integer", "minimum": 0 }, "minItems": 1 }
            ]
        })
    }
}

/// How the steering XDP program is attached to an interface (also `xlb pktgen
/// --xdp-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum XdpMode {
    /// Native (driver) mode when the driver has it, else generic.
    #[default]
    Auto,
    /// Driver mode only; fail if the driver lacks it.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Skb,
}

/// Whether AF_XDP sockets use zero-copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZeroCopy {
    /// Zero-copy when the driver has it, else copy mode.
    #[default]
    Auto,
    /// Zero-copy only; fail if the driver lacks it.
    Required,
    /// Copy mode always.
    Off,
}

/// One virtual service: VIPs and ports of one protocol, balanced over backends.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Unique name, used in metrics, logs and `xlb diff`.
    pub name: String,
    /// Virtual addresses clients connect to; an SCTP association may use all of them.
    #[serde(deserialize_with = "text::list")]
    pub vips: Vec<IpAddr>,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Destination ports served on every VIP.
    pub ports: Vec<u16>,
    /// How packets reach the backend.
    pub forwarding: Forwarding,
    /// Client prefixes allowed; others are dropped. Default: everyone.
    #[serde(default = "default_source_ranges", deserialize_with = "text::list")]
    #[schemars(schema_with = "text::prefix_list_schema")]
    pub source_ranges: Vec<IpNet>,
    /// Active health check of the backends; none means backends are always up.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// What new flows do when every backend's health check fails.
    #[serde(default)]
    pub when_all_down: AllDownPolicy,
    /// How an SCTP service places packets without shared state (sctp services only).
    #[serde(default)]
    pub sctp: Option<ServiceSctp>,
    /// Servers the traffic is spread over.
    pub backends: Vec<Backend>,
}

/// Stateless placement for an SCTP service, for clusters without (or beside) SCTP sync
/// (docs/architecture.md §5): each option decides where a packet goes whose
/// association this node does not hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSctp {
    /// What Maglev hashes for a new association.
    #[serde(default)]
    pub hash: SctpHash,
    /// Cooperating backends put their `tag_id` in the top this-many bits (1..=16) of
    /// every Initiate Tag they choose; a packet whose tag no association here holds goes
    /// to the backend its tag names.
    #[serde(default)]
    pub backend_tag_bits: Option<u8>,
}

/// What Maglev hashes to place a new SCTP association.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SctpHash {
    /// The INIT's addresses and ports; a packet whose tag is unknown here is dropped.
    #[default]
    Addresses,
    /// The ports alone, which every path of an association shares: any node places any
    /// path, and a packet whose tag is unknown here, on the same backend. Peers on fixed
    /// ports (M3UA 2905 to 2905) then all land on one backend.
    Ports,
}

/// What a service does when its health checks take every backend down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllDownPolicy {
    /// Drop new flows (counted as `no_backend`): a health check that fails everywhere
    /// is believed.
    #[default]
    Drop,
    /// Balance over every active backend as if all were healthy (Envoy's panic mode):
    /// a health check that fails everywhere is more likely broken than every backend.
    ServeAll,
}

fn default_source_ranges() -> Vec<IpNet> {
    vec![
        IpNet::V4(ipnet::Ipv4Net::default()),
        IpNet::V6(ipnet::Ipv6Net::default()),
    ]
}

/// Transport protocol of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP, with multihoming (docs/architecture.md §5).
    Sctp,
}

impl Protocol {
    /// IANA protocol number, as in the IP header.
    pub fn ip_number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// How a packet is delivered to the chosen backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Forwarding {
    /// Direct server return: only the Ethernet destination changes; the backend holds the VIP.
    Dsr,
    /// IP-in-IP (IPIP, IP6IP6, or IPv4 in IPv6) to the backend's address.
    Ipip,
    /// GUE over UDP to the backend's address.
    Gue,
    /// Full NAT: destination to the backend, source to an xlb-owned address (TCP/UDP only).
    Nat,
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Dsr => "dsr",
            Forwarding::Ipip => "ipip",
            Forwarding::Gue => "gue",
            Forwarding::Nat => "nat",
        })
    }
}

/// Active health check of a service's backends.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
#[schemars(with = "HealthCheckDocument")]
pub struct HealthCheck {
    /// What is probed.
    pub kind: HealthCheckKind,
    /// Port probed; default: the service's first port.
    pub port: Option<u16>,
    /// Time between probes.
    pub interval: Duration,
    /// A probe not answered within this is a failure; shorter than `interval`.
    pub timeout: Duration,
    /// Consecutive successes that bring a backend up.
    pub rise: u32,
    /// Consecutive failures that take a backend down.
    pub fall: u32,
    /// Where the probe is addressed: the backend's own address, or the VIP through the
    /// forwarding path.
    pub via: HealthCheckVia,
}

/// Where a health probe is addressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckVia {
    /// The backend's own address: proves the server listens, not that it holds the VIP.
    #[default]
    Backend,
    /// The service's first VIP, in the frame the dataplane would send the backend (DSR's
    /// MAC rewrite, IPIP or GUE), as Katran's health-check encapsulation does: a backend
    /// missing its VIP fails. tcp and sctp only; not for nat services.
    Vip,
}

/// What a health check probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP handshake succeeds.
    Tcp,
    /// An HTTP GET of `path` answers `expect_status`.
    Http {
        /// Request path.
        path: String,
        /// Status code meaning healthy.
        expect_status: u16,
    },
    /// An SCTP INIT is answered with INIT-ACK.
    Sctp,
}

/// The names of [`HealthCheckKind`] as written in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum HealthCheckKindName {
    /// A TCP handshake succeeds.
    Tcp,
    /// An HTTP GET of `path` answers `expect_status`.
    Http,
    /// An SCTP INIT is answered with INIT-ACK.
    Sctp,
}

/// A health check as written: flat, with the HTTP fields beside the others.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HealthCheckDocument {
    /// What is probed: tcp, http or sctp.
    kind: HealthCheckKindName,
    /// HTTP only: request path (default `/`).
    #[serde(default)]
    path: Option<String>,
    /// HTTP only: status code meaning healthy (default 200).
    #[serde(default)]
    expect_status: Option<u16>,
    /// Port probed; default: the service's first port.
    #[serde(default)]
    port: Option<u16>,
    /// Time between probes (default 1s).
    #[serde(default = "default_interval", deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    interval: Duration,
    /// A probe not answered within this is a failure (default 500ms).
    #[serde(default = "default_timeout", deserialize_with = "text::duration")]
    #[schemars(schema_with = "text::duration_schema")]
    timeout: Duration,
    /// Consecutive successes that bring a backend up (default 2).
    #[serde(default = "default_rise")]
    rise: u32,
    /// Consecutive failures that take a backend down (default 3).
    #[serde(default = "default_fall")]
    fall: u32,
    /// `backend` (default): probe the backend's address; `vip`: probe the VIP through
    /// the forwarding path, so a backend missing the VIP fails (tcp and sctp; not nat).
    #[serde(default)]
    via: HealthCheckVia,
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// Reads the flat form and builds the typed one inside the mapping's visitor, so
/// a conversion error carries the health check's position and field path.
impl<'de> Deserialize<'de> for HealthCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HealthCheckVisitor;
        impl<'de> Visitor<'de> for HealthCheckVisitor {
            type Value = HealthCheck;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a health check like { kind: tcp, interval: 1s }")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HealthCheck, A::Error> {
                let document =
                    HealthCheckDocument::deserialize(de::value::MapAccessDeserializer::new(map))?;
                HealthCheck::try_from(document).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(HealthCheckVisitor)
    }
}

impl TryFrom<HealthCheckDocument> for HealthCheck {
    type Error = String;
    fn try_from(doc: HealthCheckDocument) -> Result<Self, String> {
        let kind = match doc.kind {
            HealthCheckKindName::Http => HealthCheckKind::Http {
                path: doc.path.unwrap_or_else(|| "/".to_owned()),
                expect_status: doc.expect_status.unwrap_or(200),
            },
            other => {
                if doc.path.is_some() || doc.expect_status.is_some() {
                    let name = if other == HealthCheckKindName::Sctp {
                        "sctp"
                    } else {
                        "tcp"
                    };
                    return Err(format!(
                        "path and expect_status belong to kind http, not {name}"
                    ));
                }
                match other {
                    HealthCheckKindName::Sctp => HealthCheckKind::Sctp,
                    _ => HealthCheckKind::Tcp,
                }
            }
        };
        Ok(HealthCheck {
            kind,
            port: doc.port,
            interval: doc.interval,
            timeout: doc.timeout,
            rise: doc.rise,
            fall: doc.fall,
            via: doc.via,
        })
    }
}

/// One server behind a service.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Unique within the service; Maglev hashes it, so renaming a backend moves its flows.
    pub name: String,
    /// Address packets are sent (or encapsulated, or translated) to.
    #[serde(deserialize_with = "text::one")]
    pub address: IpAddr,
    /// Share of new flows relative to the other backends (0 = none).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Ethernet address for `dsr`; default: resolved by ARP/NDP.
    #[serde(default, deserialize_with = "text::optional_mac")]
    #[schemars(schema_with = "text::mac_schema")]
    pub mac: Option<[u8; 6]>,
    /// `active`, or `drain`: keeps its flows but gets no new ones.
    #[serde(default)]
    pub state: BackendState,
    /// The identity this backend writes into its SCTP Initiate Tags (the service's
    /// `sctp.backend_tag_bits` top bits).
    #[serde(default)]
    pub tag_id: Option<u32>,
}

fn default_weight() -> u32 {
    100
}

/// Whether a backend takes new flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// Takes new flows in proportion to its weight.
    #[default]
    Active,
    /// Keeps its existing flows and associations but gets no new ones.
    Drain,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_recognised() {
        let primes: Vec<u32> = (0..40).filter(|&n| is_prime(n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert!(is_prime(65_537));
        assert!(!is_prime(65_535));
        assert!(is_prime(16_777_213)); // largest prime a configuration may name
        assert!(is_prime(4_294_967_291)); // largest u32 prime
        assert!(!is_prime(u32::MAX));
    }

    fn queues(yaml: &str) -> Result<Queues, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn queues_are_all_or_a_list() {
        assert_eq!(queues("all").unwrap(), Queues::All);
        assert_eq!(queues("[0, 3]").unwrap(), Queues::List(vec![0, 3]));
        assert!(queues("some")
            .unwrap_err()
            .to_string()
            .contains("`all` or a list"));
        assert!(queues("[-1]").is_err());
        assert!(queues("{a: 1}").is_err());
    }

    #[test]
    fn workers_are_auto_or_a_list() {
        let workers = |yaml| serde_yaml_ng::from_str::<Workers>(yaml);
        assert_eq!(workers("auto").unwrap(), Workers::Auto);
        assert_eq!(workers("[2, 3]").unwrap(), Workers::Cores(vec![2, 3]));
        assert!(workers("all").is_err());
    }

    #[test]
    fn http_fields_only_on_http_checks() {
        let check = |yaml| serde_yaml_ng::from_str::<HealthCheck>(yaml);
        let http = check("{ kind: http }").unwrap();
        assert_eq!(
            http.kind,
            HealthCheckKind::Http {
                path: "/".into(),
                expect_status: 200
            }
        );
        assert_eq!(http.interval, Duration::from_secs(1));
        let err = check("{ kind: tcp, path: /x }").unwrap_err().to_string();
        assert!(err.contains("belong to kind http, not tcp"), "{err}");
    }
}

//! The service table's error contract: every refusal is `FILE:LINE:COL: message`
//! pointing at the offending node and naming its field; the documented examples
//! (config/example.yaml, config/lab.yaml, docs/architecture.md §3) parse; the JSON Schema is JSON.
//!
//! In the table below, `»` marks where the error must point; the harness removes it
//! and asserts that exact line and column.

use std::net::IpAddr;

use proptest::prelude::*;
use std::path::Path;
use std::time::Duration;

use xlb::config::{
    self, BackendState, ConfigError, Forwarding, HealthCheckKind, Protocol, Queues, Workers,
};

const MARK: char = '»';

/// A dataplane section that passes, for cases about services (4 lines).
const HEAD: &str = "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\nservices:\n";

/// A service that passes, for cases that add a second one.
const WEB: &str = concat!(
    "  - name: web\n",
    "    vips: [198.18.100.10]\n",
    "    protocol: tcp\n",
    "    ports: [80]\n",
    "    forwarding: dsr\n",
    "    backends: [{ name: a, address: 198.18.1.11 }]\n",
);

struct Case {
    what: &'static str,
    yaml: String,
    message: &'static str,
}

fn case(what: &'static str, yaml: impl Into<String>, message: &'static str) -> Case {
    Case {
        what,
        yaml: yaml.into(),
        message,
    }
}

/// One service after HEAD, with `fields` spliced in before `backends`.
fn service(fields: &str, backends: &str) -> String {
    format!("{HEAD}  - name: svc\n{fields}    backends:\n{backends}")
}

const ONE_BACKEND: &str = "      - { name: a, address: 198.18.1.11 }\n";
const TCP_DSR: &str =
    "    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n";

const SCTP_DSR: &str =
    "    vips: [198.18.100.20]\n    protocol: sctp\n    ports: [38412]\n    forwarding: dsr\n";
/// A dataplane with an SCTP sync section whose peers line each case adds.
const SYNC_HEAD: &str = "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  sctp:\n    sync:\n      listen: 198.18.2.1:7600\n      key_file: /etc/xlb/sync.key\n";

fn cases() -> Vec<Case> {
    vec![
        // Structure: serde_yaml_ng's own locations.
        case("unknown top-level field", format!("version: 1\n»colour: red\n{}", &HEAD[11..]), "unknown field `colour`"),
        case("unknown service field", service(&format!("{TCP_DSR}    »weight: 3\n"), ONE_BACKEND), "services[0]: unknown field `weight`"),
        case("unknown backend field", service(TCP_DSR, "      - { name: a, address: 198.18.1.11, »wieght: 3 }\n"), "services[0].backends[0]: unknown field `wieght`"),
        case("missing field", format!("{HEAD}  - »name: svc\n    vips: [198.18.100.10]\n    ports: [80]\n    forwarding: dsr\n    backends: []\n"), "services[0]: missing field `protocol`"),
        case("missing version", "»dataplane:\n  interfaces: [{ name: eth1 }]\n", "missing field `version`"),
        case("unknown version", "version: »2\ndataplane:\n  interfaces: [{ name: eth1 }]\n", "version: schema version 2 is not supported; this xlb reads version 1"),
        case("type error", service("    vips: [198.18.100.10]\n    protocol: tcp\n    ports: »eighty\n    forwarding: dsr\n", ONE_BACKEND), "services[0].ports: invalid type: string \"eighty\", expected a sequence"),
        case("unknown enum word", service("    vips: [198.18.100.10]\n    protocol: »tpc\n    ports: [80]\n    forwarding: dsr\n", ONE_BACKEND), "services[0].protocol: unknown variant `tpc`, expected one of `tcp`, `udp`, `sctp`"),
        case("port out of range", service("    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80, »70000]\n    forwarding: dsr\n", ONE_BACKEND), "services[0].ports[1]: invalid value: integer `70000`, expected u16"),
        case("empty file", "", "missing field `version`; a service table starts with `version: 1`"),
        case("duplicate key", "version: 1\ndataplane:\n  »interfaces: [{ name: eth1 }]\n  interfaces: []\n", "dataplane: duplicate field `interfaces`"),
        case("YAML syntax", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }\n»", "did not find expected ',' or ']', while parsing a flow sequence at line 3 column 15"),
        case("tab indentation", "version: 1\n»\tdataplane:\n", "found a tab character that violates indentation"),
        // Scalars written as text.
        case("bad MAC", service(TCP_DSR, "      - { name: a, address: 198.18.1.11, mac: »\"zz\" }\n"), "services[0].backends[0].mac: \"zz\" is not a MAC address (want 02:00:5e:00:53:01)"),
        case("bad backend IP", service(TCP_DSR, "      - { name: a, address: »198.18.1.300 }\n"), "services[0].backends[0].address: \"198.18.1.300\" is not an IP address"),
        case("bad VIP", service("    vips: [198.18.100.10, »web]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n", ONE_BACKEND), "services[0].vips[1]: \"web\" is not an IP address"),
        case("bad CIDR", service(&format!("{TCP_DSR}    source_ranges: [0.0.0.0/0, »198.18.0.0/33]\n"), ONE_BACKEND), "services[0].source_ranges[1]: \"198.18.0.0/33\" is not an address prefix"),
        case("CIDR with host bits", service(&format!("{TCP_DSR}    source_ranges: [»198.18.0.1/15]\n"), ONE_BACKEND), "did you mean 198.18.0.0/15?"),
        case("bad encapsulation source family", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  encapsulation: { source_v4: »\"2001:db8::1\" }\n", "dataplane.encapsulation.source_v4: \"2001:db8::1\" is not an IPv4 address"),
        case("bad metrics address", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  metrics_listen: »localhost\n", "dataplane.metrics_listen: \"localhost\" is not a socket address"),
        case("duration without unit", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  flow_table: { udp_idle: »30 }\n", "dataplane.flow_table.udp_idle: \"30\" is not a duration (want e.g. 500ms, 30s, 5m, 1h): add a unit"),
        case("bad queues", "version: 1\ndataplane:\n  interfaces: [{ name: eth1, queues: »some }]\n", "dataplane.interfaces[0].queues: \"some\" is not `all` or a list of queue ids"),
        case("bad workers", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  workers: »every\n", "dataplane.workers: \"every\" is not `auto` or a list of core ids"),
        case("http field on tcp check", service(&format!("{TCP_DSR}    health_check: »{{ kind: tcp, path: /x }}\n"), ONE_BACKEND), "services[0].health_check: path and expect_status belong to kind http, not tcp"),
        case("bad duration in a health check", service(&format!("{TCP_DSR}    health_check: {{ kind: tcp, interval: »1.5s }}\n"), ONE_BACKEND), "services[0].health_check.interval: \"1.5s\" is not a duration"),
        case("unknown health check field", service(&format!("{TCP_DSR}    health_check: {{ kind: tcp, »retries: 3 }}\n"), ONE_BACKEND), "services[0].health_check: unknown field `retries`"),
        case("unknown health check kind", service(&format!("{TCP_DSR}    health_check: {{ kind: »icmp }}\n"), ONE_BACKEND), "services[0].health_check.kind: unknown variant `icmp`, expected one of `tcp`, `http`, `sctp`"),
        // Dataplane semantics.
        case("no interface", "version: 1\ndataplane:\n  interfaces: »[]\n", "dataplane.interfaces: at least one interface is needed"),
        case("duplicate interface", "version: 1\ndataplane:\n  interfaces:\n    - name: eth1\n    - name: »eth1\n", "dataplane.interfaces[1].name: interface `eth1` is already listed at dataplane.interfaces[0]"),
        case("interface name too long", "version: 1\ndataplane:\n  interfaces: [{ name: »averyveryverylongname }]\n", "dataplane.interfaces[0].name: \"averyveryverylongname\" is not an interface name"),
        case("queue listed twice", "version: 1\ndataplane:\n  interfaces: [{ name: eth1, queues: [0, »0] }]\n", "dataplane.interfaces[0].queues[1]: queue 0 is listed twice"),
        case("no worker core", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  workers: »[]\n", "dataplane.workers: list at least one core id"),
        case("batch size", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  batch_size: »512\n", "dataplane.batch_size: 512 is out of range; a batch holds 1 to 256 frames"),
        case("ring size not a power of two", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  ring_size: »1000\n", "dataplane.ring_size: 1000 is not a power of two from 64 to 16384"),
        case("ring size too large", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  ring_size: »32768\n", "dataplane.ring_size: 32768 is not a power of two from 64 to 16384"),
        case("flow table capacity", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  flow_table: { capacity: »0 }\n", "dataplane.flow_table.capacity: a flow table needs room"),
        case("zero idle timeout", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  flow_table:\n    tcp_idle: »0s\n", "dataplane.flow_table.tcp_idle: an idle timeout of 0"),
        case("zero tcp_syn", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  flow_table: { tcp_syn: »0s }\n", "dataplane.flow_table.tcp_syn: 0 forgets every new TCP flow before its handshake's ACK"),
        case("zero new-flow rate", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  flow_table: { new_flows_per_second: »0 }\n", "dataplane.flow_table.new_flows_per_second: 0 tracks no new flow at all"),
        case("sctp max_addresses", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  sctp: { max_addresses: »9 }\n", "dataplane.sctp.max_addresses: 9 is out of range; an association keeps 1 to 8 client addresses"),
        case("sctp embryonic_timeout zero", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  sctp: { embryonic_timeout: »0s }\n", "dataplane.sctp.embryonic_timeout: 0 frees every association before its COOKIE-ECHO arrives"),
        case("sctp embryonic_per_source zero", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  sctp: { embryonic_per_source: »0 }\n", "dataplane.sctp.embryonic_per_source: 0 refuses every new association"),
        case("sctp max_addresses zero", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  sctp: { max_addresses: »0 }\n", "dataplane.sctp.max_addresses: 0 is out of range"),
        case("maglev size not prime", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  maglev_table_size: »65536\n", "dataplane.maglev_table_size: 65536 is not a prime up to 16777216"),
        case("maglev size too large", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  maglev_table_size: »4294967291\n", "dataplane.maglev_table_size: 4294967291 is not a prime up to 16777216"),
        case("maglev size too small", format!("version: 1\ndataplane:\n  interfaces: [{{ name: eth1 }}]\n  maglev_table_size: »13\nservices:\n  - name: svc\n{TCP_DSR}    backends:\n      - {{ name: a, address: 198.18.1.11 }}\n      - {{ name: b, address: 198.18.1.12 }}\n"), "dataplane.maglev_table_size: 13 is too small: service `svc` has 2 backends and Maglev needs at least 10 slots per backend (20;"),
        case("gue port zero", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  encapsulation: { gue_port: »0 }\n", "dataplane.encapsulation.gue_port: port 0 cannot be a GUE destination port"),
        case("nat unanswered timeout of 0", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  nat: { unanswered_idle: »0s }\n", "dataplane.nat.unanswered_idle: 0 frees every NAT session"),
        case("nat port range reversed", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  nat: { port_range: »[2000, 1024] }\n", "dataplane.nat.port_range: [2000, 1024] is not a port range"),
        // Service semantics.
        case("duplicate service name", format!("{HEAD}{WEB}  - name: »web\n    vips: [198.18.100.11]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends: [{{ name: a, address: 198.18.1.11 }}]\n"), "services[1].name: service `web` is already defined at services[0]"),
        case("duplicate VIP:port:protocol", format!("{HEAD}{WEB}  - name: web2\n    vips: [198.18.100.12, »198.18.100.10]\n    protocol: tcp\n    ports: [443, 80]\n    forwarding: dsr\n    backends: [{{ name: a, address: 198.18.1.11 }}]\n"), "services[1].vips[1]: 198.18.100.10 port 80/tcp of service `web2` is already served by service `web` (services[0])"),
        case("no VIP", service("    vips: »[]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n", ONE_BACKEND), "services[0].vips: list at least one VIP"),
        case("port zero", service("    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80, »0]\n    forwarding: dsr\n", ONE_BACKEND), "services[0].ports[1]: port 0 cannot be served"),
        case("no port", service("    vips: [198.18.100.10]\n    protocol: tcp\n    ports: »[]\n    forwarding: dsr\n", ONE_BACKEND), "services[0].ports: list at least one port"),
        case("empty source ranges", service(&format!("{TCP_DSR}    source_ranges: »[]\n"), ONE_BACKEND), "services[0].source_ranges: an empty list admits no client"),
        case("nat on sctp", service("    vips: [198.18.100.10]\n    protocol: sctp\n    ports: [38412]\n    forwarding: »nat\n", ONE_BACKEND), "services[0].forwarding: nat is refused for sctp: ASCONF is authenticated and multihoming needs every path unmodified; use dsr, ipip or gue"),
        case("duplicate backend name", service(TCP_DSR, "      - { name: a, address: 198.18.1.11 }\n      - { name: »a, address: 198.18.1.12 }\n"), "services[0].backends[1].name: backend `a` is already defined at services[0].backends[0]"),
        case("no usable weight", service(TCP_DSR, "      »- { name: a, address: 198.18.1.11, weight: 0 }\n      - { name: b, address: 198.18.1.12, weight: 0, state: drain }\n"), "services[0].backends: service `svc` has no backend with weight > 0"),
        case("no backend", service(TCP_DSR, "").replace("backends:\n", "backends: »[]\n"), "services[0].backends: service `svc` has no backend with weight > 0"),
        case("unspecified backend address", service(TCP_DSR, "      - { name: a, address: »0.0.0.0 }\n"), "services[0].backends[0].address: 0.0.0.0 cannot be a backend address"),
        case("nat across families", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  nat: { addresses: [198.18.0.2] }\nservices:\n  - name: svc\n    vips: [198.18.100.10, »\"2001:db8:100::10\"]\n    protocol: tcp\n    ports: [80]\n    forwarding: nat\n    backends: [{ name: a, address: 198.18.1.11 }]\n", "services[0].vips[1]: nat cannot carry IPv6 VIP 2001:db8:100::10 to IPv4 backend `a` (198.18.1.11); nat keeps the address family (no NAT64)"),
        case("ipip IPv6 VIP to IPv4 backend", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  encapsulation: { source_v4: 198.18.0.2 }\nservices:\n  - name: svc\n    vips: [»\"2001:db8:100::10\"]\n    protocol: udp\n    ports: [53]\n    forwarding: ipip\n    backends: [{ name: a, address: 198.18.1.11 }]\n", "services[0].vips[0]: ipip cannot carry IPv6 VIP 2001:db8:100::10 to IPv4 backend `a` (198.18.1.11); ipip has no IPv6-in-IPv4"),
        case("ipip without source_v4", service("    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: »ipip\n", ONE_BACKEND), "services[0].forwarding: ipip to IPv4 backend `a` needs an IPv4 source address of this host in dataplane.encapsulation.source_v4"),
        case("gue without source_v6", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  encapsulation: { source_v4: 198.18.0.2 }\nservices:\n  - name: svc\n    vips: [198.18.100.10]\n    protocol: sctp\n    ports: [38412]\n    forwarding: »gue\n    backends: [{ name: a, address: 198.18.1.11 }, { name: b, address: \"2001:db8::1:12\" }]\n", "services[0].forwarding: gue to IPv6 backend `b` needs an IPv6 source address of this host in dataplane.encapsulation.source_v6"),
        case("nat without address of the family", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n  nat: { addresses: [\"2001:db8::2\"] }\nservices:\n  - name: svc\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: »nat\n    backends: [{ name: a, address: 198.18.1.11 }]\n", "services[0].forwarding: nat to IPv4 backend `a` needs an IPv4 source address of this host in dataplane.nat.addresses"),
        case("health check rise", service(&format!("{TCP_DSR}    health_check: {{ kind: tcp, rise: »0 }}\n"), ONE_BACKEND), "services[0].health_check.rise: rise must be at least 1"),
        case("health check fall", service(&format!("{TCP_DSR}    health_check:\n      kind: tcp\n      fall: »0\n"), ONE_BACKEND), "services[0].health_check.fall: fall must be at least 1"),
        case("health check timeout not below interval", service(&format!("{TCP_DSR}    health_check: {{ kind: tcp, interval: 1s, timeout: »1s }}\n"), ONE_BACKEND), "services[0].health_check.timeout: timeout 1s must be above 0 and shorter than interval 1s"),
        case("health check default timeout above interval", service(&format!("{TCP_DSR}    health_check: »{{ kind: tcp, interval: 200ms }}\n"), ONE_BACKEND), "services[0].health_check.timeout: timeout 500ms must be above 0 and shorter than interval 200ms"),
        case("health check status", service(&format!("{TCP_DSR}    health_check: {{ kind: http, expect_status: »42 }}\n"), ONE_BACKEND), "services[0].health_check.expect_status: 42 is not an HTTP status code"),
        case("sctp settings on a tcp service", service(&format!("{TCP_DSR}    sctp: »{{ hash: ports }}\n"), ONE_BACKEND), "services[0].sctp: `sctp` settings apply to sctp services only"),
        case("backend tag bits out of range", service(&format!("{SCTP_DSR}    sctp: {{ backend_tag_bits: »17 }}\n"), ONE_BACKEND), "services[0].sctp.backend_tag_bits: 17 is out of range: 1 to 16 bits"),
        case("tag_id without tag bits", service(SCTP_DSR, "      - { name: a, address: 198.18.1.11, tag_id: »1 }\n"), "services[0].backends[0].tag_id: `tag_id` needs the service's `sctp.backend_tag_bits`"),
        case("backend without tag_id", service(&format!("{SCTP_DSR}    sctp: {{ backend_tag_bits: 4 }}\n"), "      - { name: a, address: 198.18.1.11, tag_id: 1 }\n      - »{ name: b, address: 198.18.1.12 }\n"), "services[0].backends[1].tag_id: backend `b` needs a `tag_id`"),
        case("tag_id too large", service(&format!("{SCTP_DSR}    sctp: {{ backend_tag_bits: 4 }}\n"), "      - { name: a, address: 198.18.1.11, tag_id: »16 }\n"), "services[0].backends[0].tag_id: 16 does not fit in 4 bits"),
        case("tag_id twice", service(&format!("{SCTP_DSR}    sctp: {{ backend_tag_bits: 4 }}\n"), "      - { name: a, address: 198.18.1.11, tag_id: 3 }\n      - { name: b, address: 198.18.1.12, tag_id: »3 }\n"), "services[0].backends[1].tag_id: 3 is also backend `a`'s tag_id"),
        case("sync without peers", format!("{SYNC_HEAD}      peers: »[]\n"), "dataplane.sctp.sync.peers: a sync group needs at least one peer"),
        case("sync peer is this node", format!("{SYNC_HEAD}      peers: [198.18.2.2:7600, »198.18.2.1:7600]\n"), "dataplane.sctp.sync.peers[1]: 198.18.2.1:7600 is this node's own `listen` address"),
        case("sync peer twice", format!("{SYNC_HEAD}      peers: [198.18.2.2:7600, »198.18.2.2:7600]\n"), "dataplane.sctp.sync.peers[1]: 198.18.2.2:7600 is listed twice"),
        case("sync walks too rare", format!("{SYNC_HEAD}      peers: [198.18.2.2:7600]\n      full_resync: »200s\n"), "dataplane.sctp.sync.full_resync: 200s is out of range: at least 1s and at most half of flow_table.sctp_idle (300s)"),
        case("health check port zero", service(&format!("{TCP_DSR}    health_check: {{ kind: tcp, port: »0 }}\n"), ONE_BACKEND), "services[0].health_check.port: port 0 cannot be probed"),
        // Announcement.
        case("announce device name", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\nannounce: { device: »\"xlb announce\" }\n", "announce.device: \"xlb announce\" is not an interface name"),
        case("announce on a dataplane interface", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\nannounce:\n  device: »eth1\n", "announce.device: `eth1` is a dataplane interface; the announcement needs a device of its own"),
        case("announce drain too long", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\nannounce: { drain: »2h }\n", "announce.drain: 7200s is longer than the 600s a drain may take"),
        case("unknown announce field", "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\nannounce: { »bgp: true }\n", "announce: unknown field `bgp`"),
    ]
}

/// Removes the marker and returns the text and the 1-based (line, column) it stood at.
fn unmark(marked: &str) -> (String, (usize, usize)) {
    let at = marked
        .find(MARK)
        .expect("every case marks the expected position");
    let before = &marked[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (marked.replacen(MARK, "", 1), (line, column))
}

#[test]
fn every_refusal_points_at_the_offending_node_and_names_it() {
    let mut failures = Vec::new();
    for case in cases() {
        // Cases with no marker point at the start of the file.
        let (text, (line, column)) = if case.yaml.contains(MARK) {
            unmark(&case.yaml)
        } else {
            (case.yaml.clone(), (1, 1))
        };
        let outcome = match config::parse(&text, "test.yaml") {
            Ok(_) => "accepted".to_owned(),
            Err(error) => error.to_string(),
        };
        let prefix = format!("test.yaml:{line}:{column}: ");
        if !outcome.starts_with(&prefix) || !outcome.contains(case.message) {
            failures.push(format!(
                "{}:\n  want {prefix}...{}\n  got  {outcome}",
                case.what, case.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_error_accessors_match_the_display() {
    let text = service(
        TCP_DSR,
        "      - { name: a, address: 198.18.1.11, mac: \"zz\" }\n",
    );
    let error = config::parse(&text, "edge.yaml").unwrap_err();
    assert_eq!(error.file(), "edge.yaml");
    assert_eq!(error.line(), Some(11));
    assert_eq!(error.column(), Some(47));
    assert!(error.message().starts_with("services[0].backends[0].mac: "));
    assert_eq!(
        error.to_string(),
        format!("edge.yaml:11:47: {}", error.message())
    );
}

#[test]
fn an_unreadable_file_is_an_io_error_naming_it() {
    let error = config::load(Path::new("/nonexistent/xlb.yaml")).unwrap_err();
    assert!(matches!(error, ConfigError::Io { .. }));
    assert_eq!(error.line(), None);
    assert!(error
        .to_string()
        .starts_with("/nonexistent/xlb.yaml: cannot read the service table: "));
}

/// A scratch path of this test process.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xlb-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

#[test]
fn a_fifo_or_a_directory_is_refused_without_reading_it() {
    let fifo = scratch("table.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Opening a FIFO with no writer would block: load must not even open it.
    for path in [fifo.as_path(), Path::new("/tmp")] {
        let error = config::load(path).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}

#[test]
fn an_oversized_file_is_refused() {
    let path = scratch("huge.yaml");
    let line = format!("# {}\n", "x".repeat(1022));
    std::fs::write(&path, line.repeat(17 * 1024)).expect("write");
    let error = config::load(&path).unwrap_err();
    assert!(
        error.to_string().contains("larger than the 16 MiB"),
        "{error}"
    );
}

#[test]
fn totals_beyond_the_dataplane_structures_are_refused() {
    let backends: String = (0..=config::MAX_BACKENDS)
        .map(|n| {
            format!(
                "      - {{ name: b{n}, address: 198.18.{}.{} }}\n",
                n / 256,
                n % 256
            )
        })
        .collect();
    let yaml = format!(
        "version: 1\ndataplane:\n  interfaces: [{{ name: eth0 }}]\nservices:\n  - name: web\n    vips: [198.18.100.10]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends:\n{backends}"
    );
    let error = config::parse(&yaml, "many.yaml").unwrap_err().to_string();
    assert!(
        error.starts_with("many.yaml:5:3: services: 4097 backends in all services"),
        "{error}"
    );
    let vips: Vec<String> = (0..=config::MAX_STEERED_ADDRESSES)
        .map(|n| format!("\"2001:db8:100::{n:x}\""))
        .collect();
    let yaml = format!(
        "version: 1\ndataplane:\n  interfaces: [{{ name: eth0 }}]\nservices:\n  - name: web\n    vips: [{}]\n    protocol: tcp\n    ports: [80]\n    forwarding: dsr\n    backends: [{{ name: b1, address: \"2001:db8::1:11\" }}]\n",
        vips.join(", ")
    );
    let error = config::parse(&yaml, "vips.yaml").unwrap_err().to_string();
    assert!(
        error.contains("16385 distinct VIPs and SNAT addresses"),
        "{error}"
    );
}

fn repository_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn the_example_parses_and_spells_out_the_defaults() {
    let example = config::load(&repository_file("config/example.yaml")).unwrap();
    let minimal = config::parse(
        "version: 1\ndataplane:\n  interfaces: [{ name: eth1 }]\n",
        "minimal",
    )
    .unwrap();
    // The example writes every default explicitly; only these fields have no default.
    let mut expected = minimal.dataplane.clone();
    expected.encapsulation.source_v4 = Some("198.18.0.1".parse().unwrap());
    expected.encapsulation.source_v6 = Some("2001:db8::1".parse().unwrap());
    expected.nat.addresses = vec![
        "198.18.0.2".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    ];
    assert_eq!(example.dataplane, expected);
    assert_eq!(minimal.services, []);

    let d = &minimal.dataplane;
    assert_eq!(d.interfaces[0].queues, Queues::All);
    assert_eq!(d.workers, Workers::Auto);
    assert_eq!(d.pipeline, "l4lb");
    assert_eq!(
        (d.batch_size, d.ring_size, d.maglev_table_size),
        (64, 2048, 65537)
    );
    assert_eq!(d.flow_table.capacity, 1_048_576);
    assert_eq!(d.flow_table.tcp_closing, Duration::from_secs(10));
    assert_eq!((d.sctp.capacity, d.sctp.max_addresses), (65536, 8));
    assert_eq!(d.sctp.linger, Duration::from_secs(2));
    assert_eq!(d.metrics_listen.to_string(), "127.0.0.1:9781");
    assert_eq!(d.encapsulation.gue_port, 6080);
    assert_eq!(d.nat.port_range, (1024, 65535));
    assert_eq!(d.nat.unanswered_idle, Duration::from_secs(10));

    let web = &example.services[0];
    assert_eq!(web.source_ranges.len(), 2);
    let check = web.health_check.as_ref().unwrap();
    assert_eq!(
        check.kind,
        HealthCheckKind::Http {
            path: "/healthz".into(),
            expect_status: 200
        }
    );
    assert_eq!(check.port, Some(10256));
    assert_eq!(
        (check.interval, check.timeout),
        (Duration::from_secs(1), Duration::from_millis(500))
    );
    assert_eq!((check.rise, check.fall), (2, 3));
    assert_eq!(web.backends[0].weight, 100);
    assert_eq!(web.backends[1].mac, Some([2, 0, 0, 0, 1, 0x12]));
    assert_eq!(web.backends[2].state, BackendState::Drain);
    // Defaults a minimal service gets.
    let dns = &example.services[1];
    assert_eq!(dns.backends[0].weight, 100);
    assert_eq!(dns.backends[0].state, BackendState::Active);
    assert_eq!(dns.backends[0].mac, None);
    let api = &example.services[2];
    assert_eq!(
        api.source_ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["0.0.0.0/0", "::/0"]
    );
    assert_eq!(api.health_check, None);
    assert_eq!(example.announce, Some(config::AnnounceConfig::default()));
    assert_eq!(minimal.announce, None);
}

#[test]
fn the_lab_table_parses() {
    let lab = config::load(&repository_file("config/lab.yaml")).unwrap();
    assert_eq!(lab.dataplane.interfaces[0].name, "eth0");
    assert!(lab.services.iter().any(|s| s.protocol == Protocol::Sctp));
}

/// The example table of docs/architecture.md §3, read from the document itself so the
/// two cannot drift apart.
fn architecture_example() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/architecture.md"))
        .expect("docs/architecture.md");
    let section = doc.split_once("## 3. ").expect("a section 3").1;
    let block = section.split_once("```yaml\n").expect("a yaml block").1;
    block
        .split_once("```")
        .expect("the block ends")
        .0
        .to_owned()
}

#[test]
fn the_architecture_example_parses() {
    let table = config::parse(&architecture_example(), "docs/architecture.md").unwrap();
    assert_eq!(table.dataplane.flow_table.capacity, 4_000_000);
    assert_eq!(table.services.len(), 2);
    let web = &table.services[0];
    assert_eq!(web.vips[1], "2001:db8:100::10".parse::<IpAddr>().unwrap());
    assert_eq!(web.forwarding, Forwarding::Dsr);
    assert_eq!(
        web.health_check.as_ref().unwrap().kind,
        HealthCheckKind::Tcp
    );
    assert_eq!(table.services[1].protocol, Protocol::Sctp);
}

#[test]
fn the_json_schema_describes_the_file() {
    let schema: serde_json::Value = serde_json::from_str(&config::json_schema()).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    let mut names: Vec<&str> = properties.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["announce", "dataplane", "services", "version"]);
    assert_eq!(schema["additionalProperties"], false);
    let required = schema["required"].as_array().unwrap();
    assert!(required.contains(&"version".into()) && required.contains(&"dataplane".into()));
}

proptest! {
    /// Untrusted YAML never panics the parser or the locator: the example with a
    /// slice replaced by arbitrary YAML-ish text either parses or is refused.
    #[test]
    fn mangled_tables_are_refused_without_panicking(
        start in 0usize..6000,
        length in 0usize..40,
        patch in "[a-z0-9 :,\\[\\]{}\n\"'-]{0,24}",
    ) {
        let example = std::fs::read_to_string(repository_file("config/example.yaml")).unwrap();
        let start = start.min(example.len());
        let end = (start + length).min(example.len());
        if example.is_char_boundary(start) && example.is_char_boundary(end) {
            let mangled = format!("{}{patch}{}", &example[..start], &example[end..]);
            if let Err(error) = config::parse(&mangled, "x.yaml") {
                prop_assert!(error.to_string().starts_with("x.yaml:"));
            }
        }
    }
}

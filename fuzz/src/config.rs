//! The service table reader (target `config_yaml`): any text is a table or an error that
//! says where, never a panic; a table it accepts builds a `Snapshot`.

use xlb::config::{self, ConfigError};
use xlb::lb::snapshot::{DownBackends, Snapshot, StaticResolver};

/// The name errors must carry.
const ORIGIN: &str = "fuzz.yaml";

/// Primes a valid table's Maglev size is lowered to before `Snapshot::build`, the
/// smallest one validation would still accept: a 65537-slot table per service costs the
/// fuzzer a millisecond per input and finds nothing a smaller one would not.
const SMALL_PRIMES: [u32; 4] = [251, 1021, 4093, 16381];
/// Slots per backend validation asks of the Maglev size (`config::validate`).
const SLOTS_PER_BACKEND_MIN: u64 = 10;
/// Largest total of Maglev slots (services × size) `Snapshot::build` is given.
const MAX_MAGLEV_SLOTS: u64 = 1 << 20;

/// Target `config_yaml`: the input as text (invalid UTF-8 replaced), through
/// `config::parse`; a valid table then through `Snapshot::build`.
pub fn parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match config::parse(&text, ORIGIN) {
        Err(error) => check_error(&text, &error),
        Ok(mut table) => {
            let largest = table.services.iter().map(|s| s.backends.len()).max();
            let needed = largest.unwrap_or(0) as u64 * SLOTS_PER_BACKEND_MIN;
            let size = &mut table.dataplane.maglev_table_size;
            if let Some(&small) = SMALL_PRIMES
                .iter()
                .find(|&&p| u64::from(p) >= needed && p < *size)
            {
                *size = small;
            }
            let slots = u64::from(*size) * table.services.len() as u64;
            if slots > MAX_MAGLEV_SLOTS {
                return;
            }
            let resolver = StaticResolver {
                port_macs: vec![[2, 0, 0, 0, 0, 2]],
                egress: 0,
            };
            // An error (too many backends) is an answer too; only a panic is a failure.
            let _ = Snapshot::build(&table, 1, None, &resolver, &DownBackends::new());
        }
    }
}

/// An error names the file, a line and column inside the text (or one past its last
/// line: libyaml puts the end of the stream on a line of its own), and says something.
fn check_error(text: &str, error: &ConfigError) {
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{ORIGIN}:")),
        "error without the file name: {shown}"
    );
    let line = error.line().expect("a parse error has a line");
    let column = error.column().expect("a parse error has a column");
    assert!(line >= 1 && column >= 1, "{shown}");
    // YAML breaks lines at \n, \r, and (libyaml) NEL, LS and PS.
    let breaks = text
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    assert!(
        line <= breaks + 2,
        "line {line} past the end of a {breaks}-break text: {shown}"
    );
    assert!(!error.message().trim().is_empty(), "empty message: {shown}");
}

//! The service table (docs/architecture.md §3): the YAML file that says which VIPs xlb serves,
//! how, and with which backends. This module reads it into a typed
//! [`ServiceTable`], refuses bad input with `FILE:LINE:COL: field: message`
//! errors, and prints the JSON Schema of the file for editors.
//!
//! Reading is two passes over the same text: serde_yaml_ng deserializes it into
//! the typed model (unknown fields, types, missing fields and malformed scalars
//! fail here, located by serde_yaml_ng), then `validate` checks what types cannot
//! say (uniqueness, Maglev size, address families, ...) and `locate` finds where
//! the offending node is written.

mod error;
mod locate;
mod model;
mod text;
mod validate;

use std::io::Read;
use std::path::Path;

pub use error::ConfigError;
pub use model::is_prime;
pub use model::{
    AllDownPolicy, AnnounceConfig, Backend, BackendState, DataplaneConfig, Encapsulation,
    FlowTableConfig, Forwarding, HealthCheck, HealthCheckKind, HealthCheckVia, IdlePolicy,
    Interface, Protocol, Queues, SctpHash, SctpSyncConfig, SctpTableConfig, Service, ServiceSctp,
    ServiceTable, SnatConfig, Workers, XdpMode, ZeroCopy, MAGLEV_MAX_TABLE_SIZE, MAX_BACKENDS,
    MAX_STEERED_ADDRESSES, SCTP_MAX_ADDRESSES,
};
pub use text::{format_mac, parse_duration, parse_mac};

use model::{Document, SchemaVersion};

/// Parses and validates a service table. `origin` names the text in error
/// messages (normally the file name).
pub fn parse(text: &str, origin: &str) -> Result<ServiceTable, ConfigError> {
    let document: Document = serde_yaml_ng::from_str(text).map_err(|error| {
        let (line, column) = error
            .location()
            .map_or((1, 1), |at| (at.line(), at.column()));
        ConfigError::Invalid {
            file: origin.to_owned(),
            line,
            column,
            message: yaml_error_message(&error, line, column),
        }
    })?;
    let Document {
        version: SchemaVersion,
        dataplane,
        services,
        announce,
    } = document;
    let table = ServiceTable {
        dataplane,
        services,
        announce,
    };
    validate::validate(&table).map_err(|problem| {
        let (line, column) = locate::locate(text, &problem.path).unwrap_or((1, 1));
        ConfigError::Invalid {
            file: origin.to_owned(),
            line,
            column,
            message: format!("{}: {}", problem.path, problem.message),
        }
    })?;
    Ok(table)
}

/// Largest service table file read: far beyond any real table (a thousand services of
/// a hundred backends is about 8 MiB), small enough that a wrong path cannot exhaust
/// memory.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads, parses and validates the service table at `path`. Only a regular file is
/// read (a FIFO or a device would block a reload or never end), and at most
/// [`MAX_FILE_BYTES`] of it.
pub fn load(path: &Path) -> Result<ServiceTable, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    // The type is checked before opening: opening a FIFO for reading blocks until a
    // writer comes.
    let metadata = std::fs::metadata(path).map_err(io)?;
    if !metadata.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory); give the path of a YAML file",
        )));
    }
    let too_large = || {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than the {} MiB a service table may be",
                MAX_FILE_BYTES >> 20
            ),
        ))
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    // The file may have grown since: read one byte past the cap at most.
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(io)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    parse(&text, &path.display().to_string())
}

/// The JSON Schema of the service table file, pretty-printed, for editors and
/// `xlb schema`.
pub fn json_schema() -> String {
    format!("{:#}", schemars::schema_for!(Document).as_value())
}

/// serde_yaml_ng's message without the position it repeats (the error prefix
/// carries it), and with a hint when the file does not even start like a table.
fn yaml_error_message(error: &serde_yaml_ng::Error, line: usize, column: usize) -> String {
    let message = error
        .to_string()
        .replacen(&format!(" at line {line} column {column}"), "", 1);
    if message == "missing field `version`" {
        return format!(
            "{message}; a service table starts with `version: {}` and a `dataplane` section",
            model::SCHEMA_VERSION
        );
    }
    message
}

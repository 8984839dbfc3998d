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

use std::path::Path;

pub use error::ConfigError;
pub use model::is_prime;
pub use model::{
    Backend, BackendState, DataplaneConfig, Encapsulation, FlowTableConfig, Forwarding,
    HealthCheck, HealthCheckKind, IdlePolicy, Interface, Protocol, Queues, SctpTableConfig,
    Service, ServiceTable, SnatConfig, Workers, XdpMode, ZeroCopy, MAGLEV_MAX_TABLE_SIZE,
    SCTP_MAX_ADDRESSES,
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
    } = document;
    let table = ServiceTable {
        dataplane,
        services,
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

/// Reads, parses and validates the service table at `path`.
pub fn load(path: &Path) -> Result<ServiceTable, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
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

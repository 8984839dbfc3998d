//! The error of loading a service table: where in which file, and what is wrong.

use std::path::PathBuf;

/// Why a service table was refused. Displayed as `FILE:LINE:COL: message`, the
/// message naming the field path, so editors and CI can jump to the spot.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file was read but its content is not a valid service table.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        /// Name of the file (as given by the caller).
        file: String,
        /// 1-based line of the offending node.
        line: usize,
        /// 1-based column of the offending node.
        column: usize,
        /// What is wrong, starting with the field path.
        message: String,
    },
    /// The file could not be read at all.
    #[error("{}: cannot read the service table: {source}", path.display())]
    Io {
        /// The path that was opened.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn file(&self) -> String {
        match self {
            ConfigError::Invalid { file, .. } => file.clone(),
            ConfigError::Io { path, .. } => path.display().to_string(),
        }
    }

    /// 1-based line of the offending node; `None` when the file could not be read.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            ConfigError::Io { .. } => None,
        }
    }

    /// 1-based column of the offending node; `None` when the file could not be read.
    pub fn column(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { column, .. } => Some(*column),
            ConfigError::Io { .. } => None,
        }
    }

    /// What is wrong, without the location prefix.
    pub fn message(&self) -> String {
        match self {
            ConfigError::Invalid { message, .. } => message.clone(),
            ConfigError::Io { source, .. } => format!("cannot read the service table: {source}"),
        }
    }
}

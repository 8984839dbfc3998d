//! Loads a pipeline by name (`l4lb`, `macswap`, `rxdrop`, shipped inside the binary)
//! or from a YAML file path: `stages: [parse, ...]`.

use std::path::Path;

use serde::Deserialize;

use super::stages::{self, STAGE_NAMES};
use super::Pipeline;

/// The pipelines shipped in `pipelines/`, embedded so the binary runs anywhere.
pub const BUILTIN: [(&str, &str); 3] = [
    ("l4lb", include_str!("../../pipelines/l4lb.yaml")),
    ("macswap", include_str!("../../pipelines/macswap.yaml")),
    ("rxdrop", include_str!("../../pipelines/rxdrop.yaml")),
];

/// Why a pipeline could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Neither a built-in name nor a readable file.
    #[error("pipeline {name:?}: no such built-in pipeline ({known}) and no such file: {source}")]
    NotFound {
        /// What was asked for.
        name: String,
        /// The built-in names.
        known: String,
        /// Why the file could not be read.
        source: std::io::Error,
    },
    /// The YAML does not have the expected shape.
    #[error("{origin}: {message}")]
    Syntax {
        /// File or built-in name, with line and column when known.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A stage name nobody implements.
    #[error("{origin}: unknown stage {stage:?}; known stages: {known}")]
    UnknownStage {
        /// File or built-in name.
        origin: String,
        /// The unknown name.
        stage: String,
        /// Every known stage.
        known: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineFile {
    stages: Vec<String>,
}

/// Loads a built-in pipeline by name, or a pipeline file by path.
pub fn load(name_or_path: &str) -> Result<Pipeline, PipelineError> {
    if let Some((name, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
        return parse(name, text);
    }
    let text = std::fs::read_to_string(name_or_path).map_err(|source| PipelineError::NotFound {
        name: name_or_path.to_string(),
        known: BUILTIN.map(|(n, _)| n).join(", "),
        source,
    })?;
    let name = Path::new(name_or_path)
        .file_stem()
        .map_or(name_or_path.into(), |s| s.to_string_lossy());
    let mut pipeline = parse(name_or_path, &text)?;
    pipeline.name = name.into_owned();
    Ok(pipeline)
}

/// Parses pipeline YAML; `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<Pipeline, PipelineError> {
    let file: PipelineFile = serde_yaml_ng::from_str(text).map_err(|e| PipelineError::Syntax {
        origin: match e.location() {
            Some(at) => format!("{origin}:{}:{}", at.line(), at.column()),
            None => origin.to_string(),
        },
        message: e.to_string(),
    })?;
    if file.stages.is_empty() {
        return Err(PipelineError::Syntax {
            origin: origin.to_string(),
            message: "`stages` is empty; a pipeline needs at least one stage".into(),
        });
    }
    let stages = file
        .stages
        .iter()
        .map(|stage| {
            stages::by_name(stage).ok_or_else(|| PipelineError::UnknownStage {
                origin: origin.to_string(),
                stage: stage.clone(),
                known: STAGE_NAMES.join(", "),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let name = Path::new(origin)
        .file_stem()
        .map_or(origin.into(), |s| s.to_string_lossy());
    Ok(Pipeline::new(name.into_owned(), stages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_with_their_stages() {
        let l4lb = load("l4lb").expect("l4lb loads");
        assert_eq!(
            l4lb.stage_names(),
            ["parse", "neighbor", "icmp", "classify", "acl", "balance", "rewrite"]
        );
        assert_eq!(load("macswap").expect("loads").stage_names(), ["macswap"]);
        assert_eq!(load("rxdrop").expect("loads").stage_names(), ["rxdrop"]);
    }

    #[test]
    fn unknown_stage_is_named() {
        let err = parse("mine.yaml", "stages: [parse, teleport]")
            .err()
            .expect("error");
        let text = err.to_string();
        assert!(text.contains("unknown stage \"teleport\""), "{text}");
        assert!(text.contains("known stages: parse"), "{text}");
    }

    #[test]
    fn unknown_name_and_missing_file_say_both() {
        let text = load("no-such-pipeline").err().expect("error").to_string();
        assert!(
            text.contains("no such built-in pipeline (l4lb, macswap, rxdrop)"),
            "{text}"
        );
    }

    #[test]
    fn syntax_errors_carry_a_location() {
        let text = parse("p.yaml", "stages: [parse]\nextra: 1\n")
            .err()
            .expect("error")
            .to_string();
        assert!(text.starts_with("p.yaml:2:"), "{text}");
    }
}

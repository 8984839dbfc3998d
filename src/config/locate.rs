//! Finds where a node of the YAML document starts, given its field path, so a
//! semantic error points at the offending value and not at line 1.
//!
//! serde_yaml_ng keeps its marked events private but attaches the position of the
//! node being deserialized to any error raised there. The locator walks the same
//! document with a probe that descends along the path and fails on purpose at the
//! target: the position of that failure is the target's position, computed by the
//! very parser that read the file. Used only on the error path.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a field path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A key of a mapping.
    Key(&'static str),
    /// An element of a sequence.
    Index(usize),
}

/// A path from the document root to a node, e.g. `services[1].backends[0].mac`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub(crate) Vec<Step>);

impl FieldPath {
    /// This path extended by a mapping key.
    pub(crate) fn key(&self, key: &'static str) -> FieldPath {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key));
        FieldPath(steps)
    }

    /// This path extended by a sequence index.
    pub(crate) fn index(&self, index: usize) -> FieldPath {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        FieldPath(steps)
    }
}

/// Written as serde_yaml_ng writes paths, so syntax and semantic errors read alike.
impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (position, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if position == 0 => f.write_str(key)?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The message the probe fails with once it stands on the target node.
const FOUND: &str = "xlb-locate: found";

/// 1-based line and column where the node at `path` starts in `text`. When the
/// path goes through a key the file leaves out (a default), the position is that
/// of the deepest node that exists. `None` only if the text does not parse.
pub(crate) fn locate(text: &str, path: &FieldPath) -> Option<(usize, usize)> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let error = match (Probe { rest: &path.0 }).deserialize(deserializer) {
        Ok(()) => return None,
        Err(error) => error,
    };
    let location = error.location()?;
    Some((location.line(), location.column()))
}

/// Descends along `rest`; fails at the target node or where the path stops existing.
struct Probe<'p> {
    rest: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Probe<'_> {
    /// Stops the walk here; serde_yaml_ng stamps the error with this node's position.
    fn found<E: de::Error>(&self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

impl<'de> Visitor<'de> for Probe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Step::Key(wanted), rest)) = self.rest.split_first() else {
            return self.found();
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == *wanted {
                return map.next_value_seed(Probe { rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        self.found()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Step::Index(wanted), rest)) = self.rest.split_first() else {
            return self.found();
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return self.found();
            }
        }
        match seq.next_element_seed(Probe { rest })? {
            Some(()) => Ok(()),
            None => self.found(),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.found()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.found()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.found()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.found()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.found()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.found()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.found()
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.found()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
a:
  b: [10, 20, {c: x}]
  d:
    - e: 1
      f: 2
";

    fn at(steps: Vec<Step>) -> Option<(usize, usize)> {
        locate(TEXT, &FieldPath(steps))
    }

    #[test]
    fn finds_scalars_sequences_and_mappings() {
        use Step::*;
        assert_eq!(at(vec![Key("a"), Key("b"), Index(1)]), Some((2, 11)));
        assert_eq!(
            at(vec![Key("a"), Key("b"), Index(2), Key("c")]),
            Some((2, 19))
        );
        assert_eq!(at(vec![Key("a"), Key("b")]), Some((2, 6)));
        assert_eq!(
            at(vec![Key("a"), Key("d"), Index(0), Key("f")]),
            Some((5, 10))
        );
    }

    #[test]
    fn a_missing_step_points_at_the_deepest_existing_node() {
        use Step::*;
        assert_eq!(
            at(vec![Key("a"), Key("d"), Index(0), Key("zz")]),
            Some((4, 7))
        );
        assert_eq!(at(vec![Key("a"), Key("b"), Index(7)]), Some((2, 6)));
    }

    #[test]
    fn paths_print_like_serde_yaml_ng_paths() {
        let path = FieldPath::default().key("services").index(1).key("mac");
        assert_eq!(path.to_string(), "services[1].mac");
    }
}

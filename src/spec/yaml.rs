//! A YAML document tree that remembers the line of every node.
//!
//! serde_yaml forgets positions once a value is deserialized, but every diagnostic mcpfleet prints must name the
//! line of the offending field. This module parses a file once with yaml-rust2's event parser, keeps a small tree
//! with a line per node, converts it to `serde_json::Value` for typed deserialization, and answers "which line holds
//! this field path" for validation.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML node with the 1-based line it starts on.
#[derive(Debug, Clone)]
pub struct Node {
    pub line: usize,
    pub kind: NodeKind,
}

/// The shape of a node; mapping keys keep their own line so an error about a key points at the key.
#[derive(Debug, Clone)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, usize, Node)>),
}

/// One document of a file: its tree and the line of its first token.
#[derive(Debug, Clone)]
pub struct Document {
    pub line: usize,
    pub root: Node,
}

/// A problem found while parsing YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// One step of a field path: a mapping key or a sequence index. Keys are mostly the schema's own field names,
/// borrowed; validation builds a path for every field it checks, so they should not cost an allocation each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(Cow<'static, str>),
    Index(usize),
}

/// Parses every document of `text`. Documents that are empty (a bare `---`) are dropped, as kubectl does.
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, true)
        .map_err(|e| YamlError { line: e.marker().line().max(1), message: e.info().to_string() })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs.into_iter().filter(|d| !matches!(d.root.kind, NodeKind::Null)).collect())
}

impl Node {
    /// The child at `seg`, if this node is a mapping or sequence that has it.
    pub fn child(&self, seg: &Seg) -> Option<&Node> {
        match (&self.kind, seg) {
            (NodeKind::Map(entries), Seg::Key(k)) => entries.iter().find(|(key, _, _)| key == k).map(|(_, _, v)| v),
            (NodeKind::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }
    }

    /// The line of the deepest node along `path` that exists. A path that ends on a mapping key reports the key's
    /// line, so `spec.cpu` points at `cpu:` even when its value is a block on later lines.
    pub fn line_of(&self, path: &[Seg]) -> usize {
        let mut node = self;
        let mut line = self.line;
        for seg in path {
            match (&node.kind, seg) {
                (NodeKind::Map(entries), Seg::Key(k)) => match entries.iter().find(|(key, _, _)| key == k) {
                    Some((_, key_line, value)) => {
                        line = *key_line;
                        node = value;
                    }
                    None => return line,
                },
                (NodeKind::Seq(items), Seg::Index(i)) => match items.get(*i) {
                    Some(item) => {
                        line = item.line;
                        node = item;
                    }
                    None => return line,
                },
                _ => return line,
            }
        }
        line
    }

    /// The string at a top-level key, if it is a plain string.
    pub fn str_at(&self, key: &str) -> Option<&str> {
        match self.child(&Seg::Key(key.to_string().into())).map(|n| &n.kind) {
            Some(NodeKind::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Converts to a JSON value for typed deserialization (YAML 1.2 core schema scalars).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::Number((*i).into()),
            NodeKind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::new();
                for (k, _, v) in entries {
                    map.insert(k.clone(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) | NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// Builds nodes from parser events with an explicit stack of open collections.
#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    doc_line: usize,
    error: Option<YamlError>,
}

enum Open {
    Seq { line: usize, anchor: usize, items: Vec<Node> },
    Map { line: usize, anchor: usize, entries: Vec<(String, usize, Node)>, pending_key: Option<(String, usize)> },
}

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { line, message });
        }
    }

    /// Attaches a finished node to its parent (or closes the document).
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(Document { line: self.doc_line, root: node }),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, pending_key, .. }) => match pending_key.take() {
                None => {
                    let type_name = node.type_name();
                    let key = match node.kind {
                        NodeKind::Str(s) => s,
                        NodeKind::Int(i) => i.to_string(),
                        NodeKind::Bool(b) => b.to_string(),
                        NodeKind::Float(f) => f.to_string(),
                        _ => {
                            self.fail(node.line, format!("a mapping key must be a scalar, found {type_name}"));
                            return;
                        }
                    };
                    if entries.iter().any(|(k, _, _)| *k == key) {
                        let line = node.line;
                        self.fail(line, format!("duplicate key `{key}`"));
                        return;
                    }
                    *pending_key = Some((key, node.line));
                }
                Some((key, key_line)) => entries.push((key, key_line, node)),
            },
        }
    }

    fn scalar(value: String, style: TScalarStyle, tag: Option<&yaml_rust2::parser::Tag>) -> NodeKind {
        let explicit_str = tag.is_some_and(|t| t.suffix == "str");
        if style != TScalarStyle::Plain || explicit_str || !may_be_non_string(&value) {
            return NodeKind::Str(value);
        }
        match Yaml::from_str(&value) {
            Yaml::Null => NodeKind::Null,
            Yaml::Boolean(b) => NodeKind::Bool(b),
            Yaml::Integer(i) => NodeKind::Int(i),
            Yaml::Real(r) => r.parse::<f64>().map_or(NodeKind::Str(value), NodeKind::Float),
            _ => NodeKind::Str(value),
        }
    }
}

/// Whether a plain scalar could be anything but a string under the core schema: null (`~`, `null`, empty), a
/// boolean (`true`/`false` in three casings), an integer or a float (which start with a digit, a sign or a dot).
/// Everything else (names, paths, image references) is a string without asking the resolver, which allocates.
fn may_be_non_string(value: &str) -> bool {
    match value.as_bytes().first() {
        None => true,
        Some(c) => c.is_ascii_digit() || b"+-.~nNtTfF".contains(c),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line().max(1);
        match ev {
            Event::DocumentStart => self.doc_line = line,
            Event::Scalar(value, style, anchor, tag) => {
                let node = Node { line, kind: Self::scalar(value, style, tag.as_ref()) };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.line = line;
                    self.push(node);
                }
                None => self.fail(line, "alias to an unknown anchor".to_string()),
            },
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq { line, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map { line, anchor, entries: Vec::new(), pending_key: None })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (line, anchor, kind) = match self.stack.pop() {
                    Some(Open::Seq { line, anchor, items }) => (line, anchor, NodeKind::Seq(items)),
                    Some(Open::Map { line, anchor, entries, .. }) => (line, anchor, NodeKind::Map(entries)),
                    None => return,
                };
                let node = Node { line, kind };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node);
            }
            Event::DocumentEnd | Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_string().into())
    }

    #[test]
    fn lines_are_one_based_and_point_at_keys() {
        let docs = parse("a: 1\nb:\n  c: [x, y]\n  d: \"2\"\n").unwrap();
        let root = &docs[0].root;
        assert_eq!(root.line_of(&[key("a")]), 1);
        assert_eq!(root.line_of(&[key("b"), key("d")]), 4);
        assert_eq!(root.line_of(&[key("b"), key("c"), Seg::Index(1)]), 3);
        // A missing field reports the deepest existing parent.
        assert_eq!(root.line_of(&[key("b"), key("zzz")]), 2);
        assert_eq!(root.to_json(), serde_json::json!({"a": 1, "b": {"c": ["x", "y"], "d": "2"}}));
    }

    #[test]
    fn multi_document_files_skip_empty_documents() {
        let docs = parse("---\na: 1\n---\n---\nb: true\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].root.line_of(&[key("b")]), 5);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# only a comment\n").unwrap().is_empty());
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs = parse("a: yes\nb: ~\nc: 1.5\nd: '7'\ne: !!str 8\nf: 0x10\n").unwrap();
        assert_eq!(
            docs[0].root.to_json(),
            serde_json::json!({"a": "yes", "b": null, "c": 1.5, "d": "7", "e": "8", "f": 16})
        );
    }

    #[test]
    fn duplicate_keys_and_bad_syntax_are_errors_with_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err, YamlError { line: 3, message: "duplicate key `a`".into() });
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn the_string_fast_path_agrees_with_the_resolver() {
        for v in [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "true",
            "True",
            "TRUE",
            "false",
            "False",
            "FALSE",
            "yes",
            "no",
            "on",
            "0",
            "-1",
            "+7",
            "0x1f",
            "0o17",
            "1.5",
            "-2.5e3",
            ".5",
            ".inf",
            "-.Inf",
            "+.INF",
            ".nan",
            ".NaN",
            "inf",
            "Infinity",
            "nan",
            "NaN",
            "e5",
            "E5",
            "1e5",
            "abc",
            "INFO",
            "/health",
            "sg-0abc",
            "v1.4.2",
            "ghcr.io/x:1",
            "_x",
            "@y",
            "'q'",
            "Yes",
            "ON",
            "x1",
            "i64",
            "Z9",
        ] {
            if !may_be_non_string(v) {
                assert!(matches!(Yaml::from_str(v), Yaml::String(_)), "`{v}` takes the fast path but is not a string");
            }
        }
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let docs = parse("base: &b {x: 1}\ncopy: *b\n").unwrap();
        assert_eq!(docs[0].root.to_json(), serde_json::json!({"base": {"x": 1}, "copy": {"x": 1}}));
    }
}

/// Typed deserialization straight from the tree: no intermediate JSON value, no copies of the text but the ones
/// the target types keep.
pub mod de {
    use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
    use serde::de::{self, IntoDeserializer, Visitor};

    use super::{Node, NodeKind};

    /// Deserializes `T` from a node.
    pub fn from_node<'de, T: serde::Deserialize<'de>>(node: &'de Node) -> Result<T, Error> {
        T::deserialize(NodeDe(node))
    }

    /// A borrowed node as a serde deserializer.
    #[derive(Clone, Copy)]
    pub struct NodeDe<'a>(pub &'a Node);

    impl<'de> IntoDeserializer<'de, Error> for NodeDe<'de> {
        type Deserializer = Self;
        fn into_deserializer(self) -> Self {
            self
        }
    }

    impl<'de> de::Deserializer<'de> for NodeDe<'de> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match &self.0.kind {
                NodeKind::Null => visitor.visit_unit(),
                NodeKind::Bool(b) => visitor.visit_bool(*b),
                NodeKind::Int(i) => visitor.visit_i64(*i),
                NodeKind::Float(f) => visitor.visit_f64(*f),
                NodeKind::Str(s) => visitor.visit_borrowed_str(s),
                NodeKind::Seq(items) => {
                    let mut seq = SeqDeserializer::new(items.iter().map(NodeDe));
                    let value = visitor.visit_seq(&mut seq)?;
                    seq.end()?;
                    Ok(value)
                }
                NodeKind::Map(entries) => {
                    let mut map = MapDeserializer::new(entries.iter().map(|(k, _, v)| (k.as_str(), NodeDe(v))));
                    let value = visitor.visit_map(&mut map)?;
                    map.end()?;
                    Ok(value)
                }
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0.kind {
                NodeKind::Null => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match &self.0.kind {
                // Only unit variants are written in manifests.
                NodeKind::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
                _ => self.deserialize_any(visitor),
            }
        }

        /// Only a mapping is a struct: serde would also fill a struct from a list, by position, which no one
        /// writing a manifest means.
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match &self.0.kind {
                NodeKind::Seq(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &visitor)),
                _ => self.deserialize_any(visitor),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct seq
            tuple tuple_struct map identifier ignored_any
        }
    }
}

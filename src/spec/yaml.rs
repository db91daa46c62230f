//! A YAML document tree that remembers the line of every node.
//!
//! serde_yaml forgets positions once a value is deserialized, but every diagnostic mcpfleet prints must name the
//! line of the offending field. This module parses a file once with yaml-rust2's event parser, keeps a small tree
//! with a line per node, converts it to `serde_json::Value` for typed deserialization, and answers "which line holds
//! this field path" for validation.
//!
//! Manifests come from commits the controller reloads on every change, so the parser is also a boundary against
//! hostile text: a file's size, its nesting depth and the nodes it may produce (aliases included: ten levels of
//! anchors, each repeating the last ten times, would otherwise expand a 1 KB file into 10^10 nodes) are bounded,
//! and the first limit crossed ends parsing with one located error instead of exhausting memory or the stack.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

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

/// The shape of a node; mapping keys keep their own line so an error about a key points at the key. Booleans and
/// numbers keep the text they were written as: a key or an environment value is that text (`1.10`, `007`,
/// `True`), not what the number prints as.
#[derive(Debug, Clone)]
pub enum NodeKind {
    Null,
    Bool(bool, Box<str>),
    Int(i64, Box<str>),
    Float(f64, Box<str>),
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
    pub kind: YamlErrorKind,
}

/// Which rule a text broke: its grammar, or one of the bounds that keep hostile text from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlErrorKind {
    /// Not YAML, or YAML this loader does not take (duplicate keys, collections as keys, unknown aliases).
    Syntax,
    /// The text is longer than [`MAX_FILE_BYTES`].
    TooLarge,
    /// More than [`MAX_LOOKAHEAD`] characters pass without an event: one flow collection or scalar that long.
    TooLong,
    /// Collections nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Aliases (and the anchors they copy) would produce more than [`MAX_ALIAS_NODES`] nodes.
    AliasExpansion,
    /// The file would hold more than [`MAX_NODES`] nodes.
    TooManyNodes,
}

/// The longest manifest file read: a 10,000-service fleet in one file takes about 4.3 MB.
pub const MAX_FILE_BYTES: usize = 8 << 20;

/// The deepest nesting of collections: a manifest needs five levels; the bound keeps recursion over the tree
/// (conversion, deserialization, drop) far from the stack's end.
pub const MAX_DEPTH: usize = 64;

/// Nodes that aliases may produce in one file, counting the copy an anchor keeps. Anchors never cross documents,
/// so a legitimate use (one service's shared settings) stays in the hundreds.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Nodes one file may produce: a 10,000-service fleet in one file has about 350,000.
pub const MAX_NODES: usize = 1_000_000;

/// One step of a field path: a mapping key or a sequence index. Keys are mostly the schema's own field names,
/// borrowed; validation builds a path for every field it checks, so they should not cost an allocation each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(Cow<'static, str>),
    Index(usize),
}

/// Parses every document of `text`. Documents that are empty (a bare `---`) are dropped, as kubectl does.
///
/// Events are pulled one at a time rather than through yaml-rust2's `load`, which recurses once per nesting level
/// (a line of `- - - …` would overflow the stack) and cannot stop early: here the first error ends the parse.
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(YamlError {
            line: line_at(text.as_bytes(), MAX_FILE_BYTES),
            message: too_large_message(),
            kind: YamlErrorKind::TooLarge,
        });
    }
    let lookahead = Rc::new(Lookahead::default());
    let mut builder = Builder::default();
    let mut parser = Parser::new(BoundedChars { chars: text.chars(), lookahead: Rc::clone(&lookahead) });
    let mut last_line = 1;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| {
            if lookahead.cut.get() {
                YamlError {
                    line: last_line,
                    message: format!(
                        "more than {} KiB of text without a complete value (a `[…]`/`{{…}}` collection or a scalar that long); ECS takes at most 64 KiB for a whole task definition",
                        MAX_LOOKAHEAD >> 10
                    ),
                    kind: YamlErrorKind::TooLong,
                }
            } else {
                YamlError { line: e.marker().line().max(1), message: e.info().to_string(), kind: YamlErrorKind::Syntax }
            }
        })?;
        if event == Event::StreamEnd {
            break;
        }
        last_line = mark.line().max(1);
        lookahead.limit.set(mark.index().saturating_add(MAX_LOOKAHEAD));
        builder.on_event(event, mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
    }
    Ok(builder.docs.into_iter().filter(|d| !matches!(d.root.kind, NodeKind::Null)).collect())
}

/// Characters the scanner may read past the last event it produced. yaml-rust2 holds back every token of a flow
/// collection until the collection ends (it might turn out to be a key), at a few hundred bytes a token: unbounded,
/// a one-line `[1,1,1,…]` of 8 MiB would take gigabytes before its first event.
const MAX_LOOKAHEAD: usize = 64 << 10;

/// How far the scanner may read, shared between the parse loop (which moves the bound after each event) and the
/// character source (which stops at it).
#[derive(Default)]
struct Lookahead {
    read: Cell<usize>,
    limit: Cell<usize>,
    /// The source stopped at the bound: the error that follows is the bound's, not the text's.
    cut: Cell<bool>,
}

/// The text's characters, ending early once the scanner runs [`MAX_LOOKAHEAD`] past the last event.
struct BoundedChars<'a> {
    chars: std::str::Chars<'a>,
    lookahead: Rc<Lookahead>,
}

impl Iterator for BoundedChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let read = self.lookahead.read.get();
        // Before the first event the bound is the lookahead itself.
        if read >= self.lookahead.limit.get().max(MAX_LOOKAHEAD) {
            self.lookahead.cut.set(true);
            return None;
        }
        self.lookahead.read.set(read + 1);
        self.chars.next()
    }
}

/// The 1-based line that holds byte `at` of `text` (or its last line).
pub fn line_at(text: &[u8], at: usize) -> usize {
    let end = at.min(text.len());
    1 + text[..end].iter().filter(|b| **b == b'\n').count()
}

/// What a file beyond [`MAX_FILE_BYTES`] is told; its line is the one that crosses the bound.
pub fn too_large_message() -> String {
    format!(
        "the file is larger than {} MiB (this line crosses it); split the fleet over several files",
        MAX_FILE_BYTES >> 20
    )
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
            NodeKind::Bool(b, _) => Value::Bool(*b),
            NodeKind::Int(i, _) => Value::Number((*i).into()),
            NodeKind::Float(f, _) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
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

    /// The scalar as it was written, for a boolean or number; `None` for anything else.
    pub fn as_written(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Bool(_, raw) | NodeKind::Int(_, raw) | NodeKind::Float(_, raw) => Some(raw),
            _ => None,
        }
    }

    /// How many nodes this one is, its descendants included.
    fn size(&self) -> usize {
        match &self.kind {
            NodeKind::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeKind::Map(entries) => 1 + entries.iter().map(|(_, _, v)| v.size()).sum::<usize>(),
            _ => 1,
        }
    }

    /// A short name of the node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(..) => "a boolean",
            NodeKind::Int(..) | NodeKind::Float(..) => "a number",
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
    /// Each anchor's node and its size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    doc_line: usize,
    error: Option<YamlError>,
    /// Nodes produced so far in this file, aliases' copies included.
    nodes: usize,
    /// Nodes produced by copying: anchors' own copies and every alias's.
    alias_nodes: usize,
}

enum Open {
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(String, usize, Node)>,
        pending_key: Option<(String, usize)>,
        /// The keys, once the mapping is too long to search for a duplicate one by one: a mapping of a million
        /// keys must not cost a trillion comparisons.
        keys: Option<HashSet<String>>,
    },
}

/// Entries of a mapping searched one by one for a duplicate key; beyond this they are hashed.
const LINEAR_KEYS: usize = 16;

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        self.fail_with(YamlErrorKind::Syntax, line, message);
    }

    fn fail_with(&mut self, kind: YamlErrorKind, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { line, message, kind });
        }
    }

    /// Counts `n` more nodes (`copied` when an anchor or alias copies them); false, after recording the error,
    /// when that crosses a bound.
    fn count(&mut self, line: usize, n: usize, copied: bool) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if copied {
            self.alias_nodes = self.alias_nodes.saturating_add(n);
            if self.alias_nodes > MAX_ALIAS_NODES {
                self.fail_with(
                    YamlErrorKind::AliasExpansion,
                    line,
                    format!(
                        "anchors and aliases expand to more than {MAX_ALIAS_NODES} nodes in this file; write the values out instead of nesting aliases"
                    ),
                );
                return false;
            }
        }
        if self.nodes > MAX_NODES {
            self.fail_with(
                YamlErrorKind::TooManyNodes,
                line,
                format!("the file holds more than {MAX_NODES} values; split the fleet over several files"),
            );
            return false;
        }
        true
    }

    /// Remembers an anchored node; the copy counts against the alias budget.
    fn anchor(&mut self, anchor: usize, node: &Node) -> bool {
        let size = node.size();
        if !self.count(node.line, size, true) {
            return false;
        }
        self.anchors.insert(anchor, (node.clone(), size));
        true
    }

    /// Opens a collection unless that nests too deep.
    fn open(&mut self, line: usize, open: Open) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail_with(
                YamlErrorKind::TooDeep,
                line,
                format!("collections nest deeper than {MAX_DEPTH} levels; a manifest needs a handful"),
            );
            return;
        }
        if self.count(line, 1, false) {
            self.stack.push(open);
        }
    }

    /// Attaches a finished node to its parent (or closes the document).
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(Document { line: self.doc_line, root: node }),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, pending_key, keys, .. }) => match pending_key.take() {
                None => {
                    let type_name = node.type_name();
                    // A key is its text as written: `1.10:` is the key "1.10", not "1.1".
                    let key = match node.kind {
                        NodeKind::Str(s) => s,
                        NodeKind::Int(_, raw) | NodeKind::Bool(_, raw) | NodeKind::Float(_, raw) => raw.into(),
                        _ => {
                            self.fail(node.line, format!("a mapping key must be a scalar, found {type_name}"));
                            return;
                        }
                    };
                    let duplicate = match keys {
                        Some(keys) => !keys.insert(key.clone()),
                        None if entries.len() < LINEAR_KEYS => entries.iter().any(|(k, _, _)| *k == key),
                        None => {
                            let mut set: HashSet<String> = entries.iter().map(|(k, _, _)| k.clone()).collect();
                            let duplicate = !set.insert(key.clone());
                            *keys = Some(set);
                            duplicate
                        }
                    };
                    if duplicate {
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
            Yaml::Boolean(b) => NodeKind::Bool(b, value.into()),
            Yaml::Integer(i) => NodeKind::Int(i, value.into()),
            Yaml::Real(r) => match r.parse::<f64>() {
                Ok(f) => NodeKind::Float(f, value.into()),
                Err(_) => NodeKind::Str(value),
            },
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
            Event::DocumentStart => {
                self.doc_line = line;
                // Anchors belong to their document (yaml-rust2's `load` forgets them here too).
                self.anchors.clear();
            }
            Event::Scalar(value, style, anchor, tag) => {
                if !self.count(line, 1, false) {
                    return;
                }
                let node = Node { line, kind: Self::scalar(value, style, tag.as_ref()) };
                if anchor > 0 && !self.anchor(anchor, &node) {
                    return;
                }
                self.push(node);
            }
            Event::Alias(id) => {
                // The size is checked before the copy is made: the copy is what would exhaust memory.
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    self.fail(line, "alias to an unknown anchor".to_string());
                    return;
                };
                if !self.count(line, size, true) {
                    return;
                }
                if let Some((node, _)) = self.anchors.get(&id) {
                    let mut node = node.clone();
                    node.line = line;
                    self.push(node);
                }
            }
            Event::SequenceStart(anchor, _) => self.open(line, Open::Seq { line, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => {
                self.open(line, Open::Map { line, anchor, entries: Vec::new(), pending_key: None, keys: None })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (line, anchor, kind) = match self.stack.pop() {
                    Some(Open::Seq { line, anchor, items }) => (line, anchor, NodeKind::Seq(items)),
                    Some(Open::Map { line, anchor, entries, .. }) => (line, anchor, NodeKind::Map(entries)),
                    None => return,
                };
                let node = Node { line, kind };
                if anchor > 0 && !self.anchor(anchor, &node) {
                    return;
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
        assert_eq!(err, YamlError { line: 3, message: "duplicate key `a`".into(), kind: YamlErrorKind::Syntax });
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

    /// Ten anchors, each ten aliases of the last: 10^10 nodes if expanded.
    fn alias_bomb() -> String {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let items = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        text
    }

    #[test]
    fn alias_expansion_is_bounded_and_located() {
        let err = parse(&alias_bomb()).unwrap_err();
        assert_eq!(err.kind, YamlErrorKind::AliasExpansion, "{err:?}");
        // Anchors and aliases copy 11, 111, 1,111, 11,111 … nodes per line: a4's aliases cross 100,000 on line 5.
        assert_eq!(err.line, 5, "{err:?}");
    }

    #[test]
    fn nesting_is_bounded_in_flow_and_block_style() {
        let flow = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        let err = parse(&flow).unwrap_err();
        assert_eq!((err.kind, err.line), (YamlErrorKind::TooDeep, 1), "{err:?}");
        // yaml-rust2's own loader recurses once per level: a long line of `- ` would overflow the stack.
        let block = format!("{}x\n", "- ".repeat(200_000));
        assert_eq!(parse(&block).unwrap_err().kind, YamlErrorKind::TooDeep);
        let ok = format!("a: {}1{}\n", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn a_text_beyond_the_size_bound_is_refused_at_the_line_crossing_it() {
        let line = "# 15 bytes ...\n";
        let text = line.repeat(MAX_FILE_BYTES / line.len() + 10);
        let err = parse(&text).unwrap_err();
        assert_eq!(err.kind, YamlErrorKind::TooLarge);
        assert_eq!(err.line, MAX_FILE_BYTES / line.len() + 1);
    }

    #[test]
    fn a_flow_collection_longer_than_the_lookahead_is_refused() {
        // yaml-rust2 would hold every token of this line before producing its first event (the collection might
        // be a key).
        let text = format!("[{}]\n", vec!["1"; 100_000].join(","));
        let err = parse(&text).unwrap_err();
        assert_eq!((err.kind, err.line), (YamlErrorKind::TooLong, 1), "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_found_in_long_mappings_too() {
        let mut text: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k7: again\n");
        let err = parse(&text).unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (41, "duplicate key `k7`"));
    }

    #[test]
    fn numbers_and_booleans_keep_their_text() {
        let docs = parse("1.10: x\na: 007\nb: True\nc: 12345678901234567890\n").unwrap();
        let root = &docs[0].root;
        assert_eq!(root.line_of(&[key("1.10")]), 1);
        let written = |k: &str| root.child(&key(k)).and_then(Node::as_written).map(str::to_string);
        assert_eq!(written("a").as_deref(), Some("007"));
        assert_eq!(written("b").as_deref(), Some("True"));
        assert_eq!(written("c").as_deref(), Some("12345678901234567890"));
    }

    #[test]
    fn anchors_do_not_cross_documents() {
        let err = parse("a: &x 1\n---\nb: *x\n").unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (3, "alias to an unknown anchor"));
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
                NodeKind::Bool(b, _) => visitor.visit_bool(*b),
                NodeKind::Int(i, _) => visitor.visit_i64(*i),
                NodeKind::Float(f, _) => visitor.visit_f64(*f),
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

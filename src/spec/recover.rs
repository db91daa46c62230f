//! Typed deserialization that reports every wrong field of a document, not only the first.
//!
//! serde stops at its first error, so a document with three mistakes would need three runs to fix. When the whole
//! document does not deserialize, each field of its sections (`metadata`, `spec`) is deserialized on its own to
//! find every type error, unknown field and missing required field, each with its own line. The fields that failed
//! are then dropped (optional ones) or replaced by placeholders (required ones) so the document can still be
//! deserialized and its remaining fields checked by the semantic rules; the caller learns which fields were
//! replaced and skips the rules that would read them.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use super::code::Code;
use super::validate::DocCtx;
use super::yaml::{self, Node, NodeKind, Seg};

/// A document that deserialized, possibly after repair.
pub(super) struct Recovered<T> {
    pub doc: T,
    /// Field paths (`spec.cpu`) whose written value was unusable and has been reported; their value in `doc` is a
    /// default or a placeholder that no rule should judge.
    pub broken: BTreeSet<String>,
}

/// Checks one section (`metadata` or `spec`) field by field; see [`section`].
pub(super) type SectionCheck = fn(&mut DocCtx, &str, &Node) -> Option<(Node, Vec<String>)>;

/// Deserializes a document; when that fails, reports each broken field of each of `sections` and deserializes a
/// repaired copy. `None` when the document is beyond repair (a section missing or not a mapping); every problem
/// has been reported either way.
pub(super) fn deserialize<T: DeserializeOwned + JsonSchema>(
    ctx: &mut DocCtx,
    sections: &[(&str, SectionCheck)],
) -> Option<Recovered<T>> {
    let first_error = match try_deserialize::<T>(ctx.root) {
        Ok(doc) => return Some(Recovered { doc, broken: BTreeSet::new() }),
        Err(e) => e,
    };
    let before = ctx.diags.len();
    let outcome = match repair::<T>(ctx, sections) {
        Some((root, broken)) => match try_deserialize::<T>(&root) {
            Ok(doc) => Some(Recovered { doc, broken }),
            // What is left is what no field-wise check can see, such as a missing `spec`.
            Err((code, path, message)) => {
                ctx.err(code, &path, message);
                None
            }
        },
        None => None,
    };
    if ctx.diags.len() == before {
        // The field-wise pass found nothing serde did not: report serde's own error rather than stay silent.
        let (code, path, message) = first_error;
        ctx.err(code, &path, message);
        return None;
    }
    outcome
}

/// Walks the document's top-level keys: sections are checked field by field, any other key on its own. Returns
/// the repaired document, or `None` when a section could not be repaired.
fn repair<T: DeserializeOwned + JsonSchema>(
    ctx: &mut DocCtx,
    sections: &[(&str, SectionCheck)],
) -> Option<(Node, BTreeSet<String>)> {
    let NodeKind::Map(entries) = &ctx.root.kind else { return None };
    let entries = entries.clone();
    let line = ctx.root.line;
    let mut kept = Vec::new();
    let mut broken = BTreeSet::new();
    let mut repairable = true;
    for (key, key_line, value) in entries.iter().cloned() {
        let single = Node { line, kind: NodeKind::Map(vec![(key.clone(), key_line, value.clone())]) };
        let section = sections.iter().find(|(name, _)| *name == key);
        match (field_error::<T>(&single), section) {
            (None, _) => kept.push((key, key_line, value)),
            (Some(_), Some((_, check))) => match check(ctx, &key, &value) {
                Some((node, lost)) => {
                    broken.extend(lost);
                    kept.push((key, key_line, node));
                }
                None => repairable = false,
            },
            (Some((code, path, message)), None) => {
                ctx.err(code, &path, message);
                broken.insert(key);
            }
        }
    }
    // A missing section cannot be stood in for, but it is reported with the rest.
    for field in required::<T>() {
        if !entries.iter().any(|(k, _, _)| *k == field) {
            ctx.err(Code::MissingField, &[Seg::Key(field.into())], "required field is missing");
            repairable = false;
        }
    }
    repairable.then_some((Node { line, kind: NodeKind::Map(kept) }, broken))
}

/// Checks a section of type `S` field by field. Returns the repaired section and the paths of the fields that
/// were dropped or replaced, or `None` (after reporting) when the section is not a mapping at all.
pub(super) fn section<S: DeserializeOwned + JsonSchema>(
    ctx: &mut DocCtx,
    name: &str,
    node: &Node,
) -> Option<(Node, Vec<String>)> {
    let base = [Seg::Key(name.to_string().into())];
    let NodeKind::Map(entries) = &node.kind else {
        // serde would name the Rust type ("expected struct McpServiceSpec"); users wrote YAML.
        ctx.err(Code::WrongType, &base, format!("expected a mapping of fields, found {}", node.type_name()));
        return None;
    };
    let schema = schemars::schema_for!(S);
    let mut kept = Vec::new();
    let mut broken = Vec::new();
    for (key, key_line, value) in entries {
        let single = Node { line: node.line, kind: NodeKind::Map(vec![(key.clone(), *key_line, value.clone())]) };
        let entry_map = schema.get("properties").and_then(|p| p.get(key)).is_some_and(is_entry_map);
        let usable = match &value.kind {
            // serde stops at the first bad entry of `env` or `secrets`; each entry is judged on its own instead,
            // and the good ones are kept for the rules that read them.
            NodeKind::Map(items) if entry_map && field_error::<S>(&single).is_some() => {
                let good: Vec<_> = items
                    .iter()
                    .filter(|item| {
                        let one = Node { line: value.line, kind: NodeKind::Map(vec![(*item).clone()]) };
                        let field = Node { line: node.line, kind: NodeKind::Map(vec![(key.clone(), *key_line, one)]) };
                        report_field_errors::<S>(ctx, &base, &field)
                    })
                    .cloned()
                    .collect();
                kept.push((key.clone(), *key_line, Node { line: value.line, kind: NodeKind::Map(good) }));
                false
            }
            _ => {
                let usable = report_field_errors::<S>(ctx, &base, &single);
                if usable {
                    kept.push((key.clone(), *key_line, value.clone()));
                }
                usable
            }
        };
        if !usable {
            broken.push(format!("{name}.{key}"));
        }
    }
    for field in required::<S>() {
        if !entries.iter().any(|(k, _, _)| *k == field) {
            ctx.err(
                Code::MissingField,
                &prefixed(&base, &[Seg::Key(field.clone().into())]),
                "required field is missing",
            );
            broken.push(format!("{name}.{field}"));
        }
        if !kept.iter().any(|(k, _, _)| *k == field) {
            let kind = schema.get("properties").and_then(|p| p.get(&field)).and_then(placeholder)?;
            kept.push((field, node.line, Node { line: node.line, kind }));
        }
    }
    Some((Node { line: node.line, kind: NodeKind::Map(kept) }, broken))
}

/// Deserializes `T` from a one-field mapping and reports what is wrong with that field. Returns whether the field
/// is usable.
fn report_field_errors<T: DeserializeOwned>(ctx: &mut DocCtx, base: &[Seg], single: &Node) -> bool {
    match field_error::<T>(single) {
        None => true,
        Some((code, path, message)) => {
            ctx.err(code, &prefixed(base, &path), message);
            false
        }
    }
}

/// What is wrong with the one field of `single` as a field of `T`. A missing-field error of `T` itself is
/// expected (the other fields are absent on purpose) and not a problem of this field.
fn field_error<T: DeserializeOwned>(single: &Node) -> Option<FieldError> {
    match try_deserialize::<T>(single) {
        Ok(_) => None,
        Err((Code::MissingField, path, _)) if path.len() == 1 => None,
        Err(e) => Some(e),
    }
}

/// The fields of `T` that must be written, as the JSON Schema (and so serde) names them.
fn required<T: JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    let names = schema.get("required").and_then(|r| r.as_array());
    names.into_iter().flatten().filter_map(|f| f.as_str().map(String::from)).collect()
}

/// Whether a property is a mapping of user-named entries (`env`, `secrets`, `labels`) rather than a struct.
fn is_entry_map(property: &serde_json::Value) -> bool {
    property.get("additionalProperties").is_some_and(serde_json::Value::is_object)
}

/// A value of the schema's type that deserializes and that no rule will look at.
fn placeholder(property: &serde_json::Value) -> Option<NodeKind> {
    match property.get("type")?.as_str()? {
        "string" => Some(NodeKind::Str(String::new())),
        "integer" => Some(NodeKind::Int(0, "0".into())),
        "boolean" => Some(NodeKind::Bool(false, "false".into())),
        "array" => Some(NodeKind::Seq(Vec::new())),
        _ => None,
    }
}

fn prefixed(base: &[Seg], path: &[Seg]) -> Vec<Seg> {
    base.iter().chain(path).cloned().collect()
}

/// Deserializes `T` from a node; an error comes back as a field path and a message in the project's words. The
/// node is read without path tracking first (the common, valid case, at a fraction of the cost); only one that
/// fails is read again with it, which finds the same first error, now with its path.
fn try_deserialize<T: DeserializeOwned>(node: &Node) -> Result<T, FieldError> {
    if let Ok(doc) = T::deserialize(yaml::de::NodeDe(node)) {
        return Ok(doc);
    }
    serde_path_to_error::deserialize::<_, T>(yaml::de::NodeDe(node)).map_err(|err| {
        let mut path: Vec<Seg> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone().into())),
                serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone().into())),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let (code, message) = friendly_serde_message(&err.into_inner().to_string(), &mut path);
        (code, path, message)
    })
}

/// What serde found wrong with a field: the rule, the field's path and the message in the project's words.
type FieldError = (Code, Vec<Seg>, String);

/// Rewrites serde's wording into the project's: the field goes into the path, Rust type names become words.
fn friendly_serde_message(raw: &str, path: &mut Vec<Seg>) -> (Code, String) {
    if let Some(rest) = raw.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        path.push(Seg::Key(field.to_string().into()));
        return (Code::MissingField, "required field is missing".into());
    }
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_string();
        if path.last() != Some(&Seg::Key(field.clone().into())) {
            path.push(Seg::Key(field.into()));
        }
        let expected = rest.split_once(", expected ").map(|(_, e)| e.replace('`', "")).unwrap_or_default();
        let message =
            if expected.is_empty() { "unknown field".into() } else { format!("unknown field (expected {expected})") };
        return (Code::UnknownField, message);
    }
    if let Some(rest) = raw.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        let expected = rest.split_once(", expected ").map(|(_, e)| e.replace('`', "")).unwrap_or_default();
        return (Code::WrongType, format!("`{value}` is not valid; expected {expected}"));
    }
    let message = raw
        .replace("expected u32", "expected a whole number")
        .replace("expected a boolean", "expected true or false")
        .replace("invalid type: unit value", "invalid type: null");
    // A Rust type name means nothing to someone writing YAML.
    let message = match message.split_once("expected struct ") {
        Some((head, _)) => format!("{head}expected a mapping"),
        None => message,
    };
    (Code::WrongType, message)
}

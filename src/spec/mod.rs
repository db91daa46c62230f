//! Fleet specs: the manifest types, loading (files, directories, multi-document YAML), FleetDefaults merging and
//! validation into a [`ValidFleet`].
//!
//! Reading files happens only in [`load_paths`]; everything after it works on text, so tests and the controller
//! can validate manifests without touching the filesystem.

pub mod bundle;
mod code;
mod diag;
mod image;
mod recover;
pub mod types;
mod valid;
mod validate;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use code::Code;
pub use diag::{Diagnostic, Diagnostics};
pub use image::{
    DOCKER_HUB, DOCKER_HUB_API, EcrRepo, ImageRef, ImageSource, RegistryRepo, is_docker_hub, source_of_name,
};
pub use valid::*;

use types::{
    API_VERSION, DefaultsMetadata, FleetDefaultsDoc, FleetDefaultsSpec, McpServiceDoc, McpServiceSpec, Metadata,
};
use validate::{Defaults, DocCtx};
use yaml::{Node, NodeKind, Seg, YamlErrorKind};

/// One manifest file's name (as shown in messages) and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

/// Expands `paths` (files, or directories whose `*.yaml`/`*.yml` files are taken in name order, not recursing) and
/// reads them. Unreadable paths and directories without manifests become diagnostics so they are reported with
/// every other problem. A file named more than once (`-f dir/ -f dir/a.yaml`, or two spellings of one path) is
/// read once: reading it again would report each of its services as a duplicate of itself, blaming the manifests
/// for how the command was typed. Services defined in two different files are still duplicates.
pub fn read_paths(paths: &[PathBuf]) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let file_diag = |path: &Path, code: Code, message: String| Diagnostic {
        file: path.display().to_string(),
        line: 0,
        code,
        path: String::new(),
        message,
    };
    for path in paths {
        let mut candidates = Vec::new();
        if path.is_dir() {
            match manifest_files(path) {
                Ok(found) => {
                    if found.is_empty() {
                        diags.push(file_diag(path, Code::NoManifests, "directory has no *.yaml or *.yml files".into()));
                    }
                    candidates.extend(found);
                }
                Err(e) => diags.push(file_diag(path, Code::Unreadable, format!("cannot read directory: {e}"))),
            }
        } else {
            candidates.push(path.clone());
        }
        for file in candidates {
            let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if !seen.insert(key) {
                continue;
            }
            match read_manifest(&file) {
                Ok(text) => files.push(SourceFile { name: file.display().to_string(), text }),
                Err(d) => diags.push(d),
            }
        }
    }
    (files, diags)
}

/// Reads one manifest file, never more than [`yaml::MAX_FILE_BYTES`] of it: a file beyond the bound is refused
/// before it is held in memory whole.
fn read_manifest(file: &Path) -> Result<String, Diagnostic> {
    use std::io::Read;
    let diag = |line: usize, code: Code, message: String| Diagnostic {
        file: file.display().to_string(),
        line,
        code,
        path: String::new(),
        message,
    };
    let mut bytes = Vec::new();
    let read = std::fs::File::open(file).and_then(|f| f.take(yaml::MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Err(diag(0, Code::Unreadable, format!("cannot read: {e}")));
    }
    if bytes.len() > yaml::MAX_FILE_BYTES {
        let line = yaml::line_at(&bytes, yaml::MAX_FILE_BYTES);
        return Err(diag(line, Code::FileTooLarge, yaml::too_large_message()));
    }
    String::from_utf8(bytes)
        .map_err(|_| diag(0, Code::Unreadable, "cannot read: stream did not contain valid UTF-8".into()))
}

/// The manifest files of a directory: its `*.yaml` and `*.yml` files (not recursing), in name order. The one
/// definition of what `-f DIR` means, shared by the loader and the controller's watch for edits, so the two never
/// disagree on which files make the fleet.
pub fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    found.sort();
    Ok(found)
}

/// What the command line adds to the manifests.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--bridge-image`: the bridge image of stdio services when FleetDefaults names none (parsed with
    /// [`ImageRef::parse_pinned`]).
    pub bridge_image: Option<ImageRef>,
}

/// Reads, parses and validates the manifests under `paths`.
pub fn load_paths(paths: &[PathBuf]) -> Result<ValidFleet, Diagnostics> {
    load_paths_with(paths, &LoadOptions::default())
}

/// [`load_paths`] with the command line's additions.
pub fn load_paths_with(paths: &[PathBuf], opts: &LoadOptions) -> Result<ValidFleet, Diagnostics> {
    let (files, mut diags) = read_paths(paths);
    match load_sources_with(&files, opts) {
        Ok(fleet) if diags.is_empty() => Ok(fleet),
        Ok(_) => Err(Diagnostics(diags)),
        Err(Diagnostics(more)) => {
            diags.extend(more);
            Err(Diagnostics(diags))
        }
    }
}

/// A document that parsed as one of our kinds, with its tree for line lookups.
struct Parsed<T> {
    file: String,
    line: usize,
    root: Node,
    doc: T,
    /// Fields (`spec.cpu`) that were written but unusable; already reported, so no rule judges them again.
    broken: BTreeSet<String>,
}

/// Every document of a fleet, sorted by kind.
#[derive(Default)]
struct Documents {
    defaults: Vec<Parsed<FleetDefaultsDoc>>,
    services: Vec<Parsed<McpServiceDoc>>,
    /// A FleetDefaults was written but could not be read at all; its fields are unknown, not absent.
    unreadable_defaults: bool,
}

/// Parses and validates manifest texts; collects every problem of every file before failing.
pub fn load_sources(files: &[SourceFile]) -> Result<ValidFleet, Diagnostics> {
    load_sources_with(files, &LoadOptions::default())
}

/// [`load_sources`] with the command line's additions.
pub fn load_sources_with(files: &[SourceFile], opts: &LoadOptions) -> Result<ValidFleet, Diagnostics> {
    let mut diags = Vec::new();
    let mut docs_of_fleet = Documents::default();

    for file in files {
        let docs = match yaml::parse(&file.text) {
            Ok(docs) => docs,
            Err(e) => {
                let (code, message) = match e.kind {
                    YamlErrorKind::Syntax => (Code::InvalidYaml, format!("invalid YAML: {}", e.message)),
                    YamlErrorKind::TooLarge => (Code::FileTooLarge, e.message),
                    YamlErrorKind::TooLong => (Code::ValueTooLong, e.message),
                    YamlErrorKind::TooDeep => (Code::TooDeep, e.message),
                    YamlErrorKind::AliasExpansion => (Code::AliasExpansion, e.message),
                    YamlErrorKind::TooManyNodes => (Code::TooManyValues, e.message),
                };
                diags.push(Diagnostic { file: file.name.clone(), line: e.line, code, path: String::new(), message });
                continue;
            }
        };
        if docs.is_empty() {
            diags.push(Diagnostic {
                file: file.name.clone(),
                line: 1,
                code: Code::EmptyFile,
                path: String::new(),
                message: "empty file: no YAML documents (expected FleetDefaults or McpService)".into(),
            });
        }
        for doc in docs {
            parse_document(&file.name, doc, &mut diags, &mut docs_of_fleet);
        }
    }
    let Documents { defaults, services, unreadable_defaults } = docs_of_fleet;

    if defaults.len() > 1 {
        let first = format!("{}:{}", defaults[0].file, defaults[0].line);
        for extra in &defaults[1..] {
            diags.push(Diagnostic {
                file: extra.file.clone(),
                line: extra.line,
                code: Code::DefaultsTwice,
                path: "kind".into(),
                message: format!("only one FleetDefaults is allowed per fleet; the first is at {first}"),
            });
        }
    }
    let (defaults_spec, defaults_broken) = match defaults.first() {
        Some(d) => {
            validate::check_defaults(&mut DocCtx { file: &d.file, root: &d.root, diags: &mut diags }, &d.doc.spec);
            (d.doc.spec.clone(), d.broken.clone())
        }
        None => (FleetDefaultsSpec::default(), BTreeSet::new()),
    };
    // A FleetDefaults that failed to parse, wholly or in part, has been reported; the fields it could not give
    // are unknown rather than missing, so services are not told, one by one, to set them.
    let merged = Defaults::new(defaults_spec.clone(), unreadable_defaults, defaults_broken, opts.bridge_image.as_ref());

    if services.is_empty() && diags.is_empty() && !files.is_empty() {
        diags.push(Diagnostic {
            file: files.first().map(|f| f.name.clone()).unwrap_or_else(|| "(no files)".into()),
            line: 0,
            code: Code::NoServices,
            path: String::new(),
            message: "no McpService documents found; a fleet needs at least one service".into(),
        });
    }

    let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
    let mut ports_seen: BTreeMap<u32, String> = BTreeMap::new();
    let mut valid = Vec::new();
    // Each document (its YAML tree and typed form) is freed once its service is validated: a 10,000-service fleet
    // otherwise held every tree and every validated service at once (30 MB more at the peak of loading it).
    for svc in services {
        let mut ctx = DocCtx { file: &svc.file, root: &svc.root, diags: &mut diags };
        let name_path = [Seg::Key("metadata".into()), Seg::Key("name".into())];
        let here = format!("{}:{}", svc.file, svc.root.line_of(&name_path));
        // A name that did not parse is a placeholder: neither a duplicate nor the first of its name.
        if !svc.broken.contains("metadata.name") {
            if let Some(first) = first_seen.get(&svc.doc.metadata.name) {
                ctx.err(
                    Code::DuplicateService,
                    &name_path,
                    format!(
                        "service `{}` is already defined at {first}; names must be unique in a fleet",
                        svc.doc.metadata.name
                    ),
                );
                continue;
            }
            first_seen.insert(svc.doc.metadata.name.clone(), here);
        }
        validate::check_unique_local_port(&mut ctx, &svc.doc, &mut ports_seen);
        if let Some(v) = validate::check_service(&mut ctx, &svc.doc, svc.line, &merged, &svc.broken) {
            valid.push(v);
        }
    }

    if !diags.is_empty() {
        diags.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
        return Err(Diagnostics(diags));
    }
    valid.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ValidFleet {
        services: valid,
        session_store: defaults_spec.session_store,
        default_cluster: defaults_spec.cluster,
    })
}

/// Checks apiVersion and kind, then deserializes the document into its typed form, reporting every broken field.
fn parse_document(file: &str, doc: yaml::Document, diags: &mut Vec<Diagnostic>, out: &mut Documents) {
    let mut root = doc.root;
    env_as_written(&mut root);
    let mut ctx = DocCtx { file, root: &root, diags };
    if !matches!(root.kind, NodeKind::Map(_)) {
        ctx.err(
            Code::NotAMapping,
            &[],
            format!("expected a mapping with apiVersion, kind, metadata and spec, found {}", root.type_name()),
        );
        return;
    }
    let is_defaults = root.str_at("kind") == Some("FleetDefaults");
    let api_path = [Seg::Key("apiVersion".into())];
    match root.str_at("apiVersion") {
        Some(API_VERSION) => {}
        Some(other) => {
            ctx.err(Code::ApiVersion, &api_path, format!("`{other}` is not supported; expected {API_VERSION}"));
            out.unreadable_defaults |= is_defaults;
            return;
        }
        None => {
            ctx.err(Code::ApiVersion, &api_path, format!("required: expected {API_VERSION}"));
            out.unreadable_defaults |= is_defaults;
            return;
        }
    }
    let kind_path = [Seg::Key("kind".into())];
    let line = root.line;
    match root.str_at("kind") {
        Some("FleetDefaults") => {
            let sections: [(&str, recover::SectionCheck); 2] =
                [("metadata", recover::section::<DefaultsMetadata>), ("spec", recover::section::<FleetDefaultsSpec>)];
            match recover::deserialize::<FleetDefaultsDoc>(&mut ctx, &sections) {
                Some(r) => {
                    out.defaults.push(Parsed { file: file.to_string(), line, root, doc: r.doc, broken: r.broken })
                }
                None => out.unreadable_defaults = true,
            }
        }
        Some("McpService") => {
            let sections: [(&str, recover::SectionCheck); 2] =
                [("metadata", recover::section::<Metadata>), ("spec", recover::section::<McpServiceSpec>)];
            if let Some(r) = recover::deserialize::<McpServiceDoc>(&mut ctx, &sections) {
                out.services.push(Parsed { file: file.to_string(), line, root, doc: r.doc, broken: r.broken });
            }
        }
        Some(other) => {
            ctx.err(Code::Kind, &kind_path, format!("`{other}` is not a mcpfleet kind (FleetDefaults or McpService)"))
        }
        None => ctx.err(Code::Kind, &kind_path, "required: FleetDefaults or McpService"),
    }
}

/// Makes every boolean or number under `spec.env` the text it was written as. A container gets its environment as
/// text, so `VERSION: 1.10` must arrive as `1.10`, not as the float's `1.1`; likewise `007`, `True` and integers
/// beyond 64 bits. Quoting is then never needed to keep a value.
fn env_as_written(root: &mut Node) {
    let NodeKind::Map(top) = &mut root.kind else { return };
    let Some((_, _, spec)) = top.iter_mut().find(|(k, _, _)| k == "spec") else { return };
    let NodeKind::Map(fields) = &mut spec.kind else { return };
    let Some((_, _, env)) = fields.iter_mut().find(|(k, _, _)| k == "env") else { return };
    let NodeKind::Map(vars) = &mut env.kind else { return };
    for (_, _, value) in vars {
        if let Some(text) = value.as_written() {
            value.kind = NodeKind::Str(text.to_string());
        }
    }
}

/// Convenience for tests and callers holding text: one file.
pub fn load_str(name: &str, text: &str) -> Result<ValidFleet, Diagnostics> {
    load_sources(&[SourceFile { name: name.to_string(), text: text.to_string() }])
}

/// Where the committed schema is published, for `$id` and the manifests' `yaml-language-server` line.
pub const SCHEMA_ID: &str =
    "https://raw.githubusercontent.com/mcpfleet/mcpfleet/main/schemas/mcpfleet.v1alpha1.schema.json";

/// The JSON Schema (draft-07, which every YAML editor understands) of a manifest document.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<types::Manifest>().to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), SCHEMA_ID.into());
    }
    schema
}

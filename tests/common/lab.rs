//! A lab for scenario tests on the sim backend: a copy of the example manifests and a fresh, seeded sim state,
//! driven through the real binary.

use std::path::{Path, PathBuf};

use mcpfleet::backend::Op;
use mcpfleet::backend::sim::World;
use serde_json::Value;

pub const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp";
/// The target group documents.yaml exposes the service through (the quickstart makes it, health check `/ready`).
pub const TARGET_GROUP: &str = "mcp-documents";

/// A copy of the example manifests and a fresh sim state, seeded as the quickstart does: images, secrets and
/// documents' target group.
pub struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("manifests")).unwrap();
        for f in ["fleet.yaml", "documents.yaml", "database.yaml", "search.yaml"] {
            std::fs::copy(Path::new("manifests").join(f), dir.path().join("manifests").join(f)).unwrap();
        }
        let lab = Lab { dir };
        lab.ok(&["sim", "push", &format!("{ECR}/documents:v1.4.2")]);
        lab.ok(&["sim", "push", &format!("{ECR}/database:v2.0.1"), "--platform", "linux/amd64"]);
        lab.ok(&["sim", "push", &format!("{ECR}/search:v0.9.0")]);
        for s in ["prod/mcp/openai-key", "prod/mcp/db-password", "prod/mcp/search-api-key"] {
            lab.ok(&["sim", "secret", s]);
        }
        lab.ok(&["sim", "target-group", TARGET_GROUP, "--health-path", "/ready"]);
        lab
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("sim.json")
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        super::mcpfleet()
            .args(["--backend", "sim", "--sim-state", self.state().to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        super::json_output(args, &self.run(args))
    }

    pub fn apply(&self, extra: &[&str]) -> (i32, Value) {
        let m = self.manifests();
        let mut args = vec!["apply", "-f", m.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    pub fn plan(&self) -> (i32, Value) {
        self.plan_with(&[])
    }

    pub fn plan_with(&self, extra: &[&str]) -> (i32, Value) {
        let m = self.manifests();
        let mut args = vec!["plan", "-f", m.to_str().unwrap(), "-o", "json", "--detailed-exitcode"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// The sim's world as the state files hold it (the journal of a crashed command included).
    pub fn world(&self) -> World {
        mcpfleet::backend::sim::read_state(&self.state()).unwrap()
    }

    /// Pushes `SERVICE:TAG` (healthy), points the service's manifest (`SERVICE.yaml`) at it and applies with
    /// `--wait`, which must succeed.
    pub fn deploy_tag(&self, service: &str, tag: &str) {
        self.ok(&["sim", "push", &format!("{ECR}/{service}:{tag}")]);
        let file = format!("{service}.yaml");
        let current = std::fs::read_to_string(self.manifests().join(&file)).unwrap();
        let prefix = format!("{service}:");
        let old = current.split(&prefix).nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        self.edit_manifest(&file, &format!("{prefix}{old}"), &format!("{prefix}{tag}"));
        let (code, doc) = self.apply(&["--wait"]);
        assert_eq!(code, 0, "{doc:#}");
    }

    /// The plan text (`plan` without `-o json`).
    pub fn plan_text(&self) -> String {
        let m = self.manifests();
        self.ok(&["plan", "-f", m.to_str().unwrap()])
    }

    pub fn edit_manifest(&self, file: &str, from: &str, to: &str) {
        let path = self.manifests().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from));
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

/// One service of a `plan`, `apply` or `status` JSON document, by name (the example fleet has one cluster).
pub fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

/// `history NAME` in the example fleet's cluster, newest first: (revision, outcome).
pub fn history(lab: &Lab, name: &str) -> Vec<(u64, String)> {
    let (code, doc) = lab.json(&["history", name, "--cluster", "mcp-prod", "-o", "json"]);
    assert_eq!(code, 0, "{doc:#}");
    doc["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["revision"].as_u64().unwrap(), r["outcome"].as_str().unwrap().to_string()))
        .collect()
}

/// One service of a `plan` or `apply` JSON document, by cluster and name.
pub fn entry<'a>(doc: &'a Value, cluster: &str, name: &str) -> &'a Value {
    let services = doc["services"].as_array().unwrap();
    services.iter().find(|s| s["name"] == name && s["cluster"] == cluster).unwrap()
}

pub fn outcomes(doc: &Value) -> Vec<(String, String)> {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["outcome"].as_str().unwrap().to_string()))
        .collect()
}

/// The operations that change something in ECS (as the binary's `apiCalls` and moto's recorder name them). The
/// set itself is pinned by `backend::op`'s unit test `iam_actions_and_writes`.
pub fn write_ops() -> impl Iterator<Item = &'static str> {
    Op::ALL.into_iter().filter(|op| op.is_write()).map(Op::as_str)
}

/// Write requests in an `-o json` document's `apiCalls`. Every name there must be an [`Op`]: a request the type
/// does not know could be a write this count would miss.
pub fn writes(doc: &Value) -> u64 {
    let calls = doc["apiCalls"]["calls"].as_object().unwrap();
    calls
        .iter()
        .map(|(name, n)| {
            let op = Op::from_name(name).unwrap_or_else(|| panic!("apiCalls names an unknown operation {name}"));
            if op.is_write() { n.as_u64().unwrap() } else { 0 }
        })
        .sum()
}

//! Rendering: a validated service plus its resolutions → the exact documents ECS and Docker Compose take.
//!
//! Pure functions only: no I/O, no clocks, no AWS. `ecs` produces RegisterTaskDefinition and CreateService
//! inputs (the same types describe what the backends observe, so plan can compare like with like); `compose`
//! produces the local docker-compose.yml; `bridge` holds what both render for a stdio server behind the bridge.

pub mod autoscaling;
pub mod bridge;
pub mod compose;
pub mod ecs;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::{Architecture, ValidService};

/// The CPU architecture ECS runs a task on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CpuArch {
    #[serde(rename = "ARM64")]
    Arm64,
    #[serde(rename = "X86_64")]
    X86_64,
}

impl CpuArch {
    /// The OCI platform string of this architecture.
    pub fn platform(self) -> &'static str {
        match self {
            CpuArch::Arm64 => "linux/arm64",
            CpuArch::X86_64 => "linux/amd64",
        }
    }

    /// The value ECS uses in `runtimePlatform.cpuArchitecture`.
    pub fn as_ecs(self) -> &'static str {
        match self {
            CpuArch::Arm64 => "ARM64",
            CpuArch::X86_64 => "X86_64",
        }
    }
}

/// What resolution decided for one service: the image ECS pulls, the architecture, and each secret's `valueFrom`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The image field of the container: `repo@sha256:…` once resolved, the reference as written before.
    pub image: String,
    /// The digest the image is pinned to, once known.
    pub digest: Option<String>,
    /// The architecture, once known (`auto` is only known after reading the image index).
    pub architecture: Option<CpuArch>,
    /// Env var name → ECS `valueFrom`.
    pub secrets: BTreeMap<String, String>,
    /// The ARN of each `spec.expose.loadBalancers` target group, in manifest order.
    pub target_groups: Vec<String>,
    /// The ARN of the `spec.registryCredentials` secret (as written before resolution).
    pub registry_credentials: Option<String>,
    /// The secrets the tasks read by stage, with the version holding it now (empty before resolution).
    pub secret_versions: Vec<crate::state::secrets::SecretInUse>,
    /// A stdio server's command: `spec.command`, or its image's `Entrypoint` + `Cmd` once resolution read them
    /// (`None` before: see [`Resolved::unresolved`]).
    pub command: Option<Vec<String>>,
    /// What resolution noticed but does not refuse (an image `repo:tag@digest` whose tag now points elsewhere).
    pub warnings: Vec<String>,
    /// The resource label of the target group `autoscaling.requestsPerTarget` follows (its Application Load
    /// Balancer's and its own ARN, see [`autoscaling::request_count_label`]), once resolved.
    pub request_count_label: Option<String>,
    /// The platforms the image's index lists (`linux/arm64`, …), once resolved; empty before, or when the registry's
    /// answer does not say (a single manifest in ECR). `mcpfleet cost` reads it to suggest ARM64.
    pub platforms: Vec<String>,
}

impl Resolved {
    /// The resolution `render` uses without AWS: tags stay tags, secrets stay as written, `auto` stays open, and
    /// a stdio server without `command` has none yet (its image's own is read by resolution: `render` refuses it,
    /// see [`unknown_command`]).
    pub fn unresolved(svc: &ValidService) -> Resolved {
        Resolved {
            image: svc.image.to_string(),
            digest: svc.image.digest.clone(),
            architecture: match svc.architecture {
                Architecture::Arm64 => Some(CpuArch::Arm64),
                Architecture::X86_64 => Some(CpuArch::X86_64),
                Architecture::Auto => None,
            },
            secrets: svc.secrets.iter().map(|(name, r)| (name.clone(), r.value_from(&r.secret))).collect(),
            // Like secrets, target groups stay as written: a name is only turned into its ARN by asking ELBv2.
            target_groups: svc.load_balancers.iter().map(|lb| lb.target_group.clone()).collect(),
            registry_credentials: svc.registry_credentials.clone(),
            secret_versions: vec![],
            command: svc.stdio.as_ref().and_then(|s| s.command.clone()),
            warnings: vec![],
            request_count_label: None,
            platforms: vec![],
        }
    }
}

/// Where a stdio service without `command` is written, for a render that cannot read its image's `Entrypoint` +
/// `Cmd` (no registry is asked there): `None` when the service's command is known.
pub fn unknown_command(svc: &ValidService) -> Option<String> {
    svc.stdio.as_ref().filter(|s| s.command.is_none()).map(|_| {
        format!(
            "{}:{}: spec.command: service `{}` runs its image's Entrypoint + Cmd, which only plan and apply read \
             from the registry; write `command` to render it without them",
            svc.source.file, svc.lines.command, svc.name
        )
    })
}

/// Plain data as JSON. Serializing mcpfleet's own documents cannot fail (derived impls, string map keys); should a
/// type ever break that, its Debug form stands in as a string: still a function of every field, so a diff of two
/// different values still shows a change, and nothing panics.
pub fn json_of(v: &(impl Serialize + std::fmt::Debug)) -> Value {
    serde_json::to_value(v).unwrap_or_else(|_| Value::String(debug_form(v)))
}

/// The Debug form that stands in for a value JSON refused (see [`json_of`]).
fn debug_form(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}")
}

//! What the fleet's services run, for `mcpfleet cost` and the plan's cost line: the desired side read from the
//! rendered services, the current side from the revision each changed service runs. The arithmetic is
//! [`crate::cost`]'s.

use std::collections::BTreeMap;

use crate::backend::{BackendError, Ecs, ServiceState, TaskDefinition};
use crate::cost::{Change, Priced, Tasks};
use crate::plan::{Action, Plan};
use crate::render::CpuArch;
use crate::render::ecs::EcsService;

use super::{Desired, Observed};

/// What a desired service runs once applied, with `replicas` tasks.
fn desired_tasks(e: &EcsService, replicas: u32) -> Option<Tasks> {
    let td = &e.register_task_definition;
    let arch = td.runtime_platform.cpu_architecture?;
    Tasks::from_task_definition(&td.cpu, &td.memory, arch, replicas)
}

/// A desired service to price (`cost`): the count it is created with, as `plan` resolved it. None for a
/// service whose architecture is not resolved (never after [`super::desired_state`]).
pub fn priced(d: &Desired) -> Option<Priced> {
    Some(Priced {
        name: d.ecs.name.clone(),
        cluster: d.ecs.cluster.clone(),
        tasks: desired_tasks(&d.ecs, d.ecs.create_service.desired_count)?,
        arm64_image: d.arm64_image,
    })
}

/// What a revision runs, `replicas` times. A revision without an architecture runs on X86_64, ECS's default.
fn running(td: &TaskDefinition, replicas: u32) -> Option<Tasks> {
    let arch = td.spec.runtime_platform.cpu_architecture.unwrap_or(CpuArch::X86_64);
    Tasks::from_task_definition(&td.spec.cpu, &td.spec.memory, arch, replicas)
}

/// Why a plan's cost change cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum Unpriced {
    /// A revision a changed service runs could not be read.
    #[error("the revision {arn} of {service} could not be read: {source}")]
    Describe { service: String, arn: String, source: BackendError },
    /// A size that is not Fargate's (`cpu`/`memory` of a revision made outside mcpfleet), or no architecture.
    #[error("the size of {service} ({what}) is not one Fargate prices")]
    Size { service: String, what: String },
}

/// Each service the plan creates, updates or deletes, before and after. The current side is the revision the
/// service runs: from `revisions` (those the plan described, by ARN), else described once per distinct revision.
/// The count after an update is the count now, unless the spec sets it (without autoscaling) or it is outside
/// the autoscaling bounds.
pub async fn plan_changes(
    plan: &Plan,
    desired: &[Desired],
    observed: &Observed,
    ecs: &dyn Ecs,
    mut revisions: BTreeMap<String, TaskDefinition>,
) -> Result<Vec<Change>, Unpriced> {
    let mut out = Vec::new();
    for p in plan.services.iter().filter(|p| matches!(p.action, Action::Create | Action::Update | Action::Delete)) {
        let service = format!("{} ({})", p.name, p.cluster);
        let d = desired.iter().find(|d| d.ecs.name == p.name && d.ecs.cluster == p.cluster);
        let o = observed
            .get(&p.cluster, &p.name)
            .or_else(|| observed.unlisted.iter().find(|s| s.cluster == p.cluster && s.name == p.name))
            .filter(|o| o.is_active() && p.action != Action::Create);
        let from = match o {
            Some(o) => Some(current(o, &mut revisions, ecs, &service).await?),
            None => None,
        };
        let to = match d.filter(|_| p.action != Action::Delete) {
            Some(d) => {
                let replicas = match (o, &d.ecs.autoscaling) {
                    (Some(o), Some(a)) => a.bounds().correction(o.desired_count).unwrap_or(o.desired_count),
                    _ => d.ecs.create_service.desired_count,
                };
                let what = format!(
                    "{} CPU units, {} MiB",
                    d.ecs.register_task_definition.cpu, d.ecs.register_task_definition.memory
                );
                Some(desired_tasks(&d.ecs, replicas).ok_or_else(|| Unpriced::Size { service: service.clone(), what })?)
            }
            None => None,
        };
        out.push(Change { name: p.name.clone(), cluster: p.cluster.clone(), from, to });
    }
    Ok(out)
}

/// What `o` runs now: its revision, described once per run.
async fn current(
    o: &ServiceState,
    revisions: &mut BTreeMap<String, TaskDefinition>,
    ecs: &dyn Ecs,
    service: &str,
) -> Result<Tasks, Unpriced> {
    let arn = &o.task_definition;
    if !revisions.contains_key(arn) {
        let td = ecs.describe_task_definition(arn).await.map_err(|source| Unpriced::Describe {
            service: service.to_string(),
            arn: arn.clone(),
            source,
        })?;
        revisions.insert(arn.clone(), td);
    }
    let td = revisions.get(arn);
    td.and_then(|td| running(td, o.desired_count)).ok_or_else(|| Unpriced::Size {
        service: service.to_string(),
        what: td.map_or_else(String::new, |td| format!("cpu `{}`, memory `{}`", td.spec.cpu, td.spec.memory)),
    })
}

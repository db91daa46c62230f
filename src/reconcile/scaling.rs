//! Autoscaling through the ports: reading what Application Auto Scaling has for the services that have or want
//! autoscaling (before anything is written), and carrying out a plan's autoscaling steps.
//!
//! Reads: one DescribeScalableTargets per 50 such services (their resource ids in one request), and a
//! DescribeScalingPolicies only for a service whose target is missing its wanted bounds or whose recorded
//! autoscaling (the `mcpfleet.io/autoscaling` tag) is not the spec's — so a converged fleet reads no policy.
//! Writes run after the service exists and the tag is written last: deleted policies, the target
//! (de)registered, policies put, then the tag (see `plan::scaling`).

use super::{Desired, Observed, Progress};
use crate::backend::{Autoscaling, BackendError, Ecs, SCALABLE_TARGETS_BATCH, ServiceState};
use crate::plan::scaling::{ObservedScaling, Record, ScalingSteps, needs_policies};
use crate::render::autoscaling::{ScalingDocs, resource_id};
use crate::state::{self, ServiceTags, TAG_AUTOSCALING};

/// The autoscaling hash an observed, active service's tag records.
fn recorded(s: Option<&ServiceState>) -> Option<&str> {
    s.filter(|s| s.is_active()).and_then(|s| ServiceTags::of(s).autoscaling)
}

/// One service whose autoscaling is read: its key, resource id, wanted documents and recorded hash.
struct Wanted<'a> {
    key: (String, String),
    resource_id: String,
    desired: Option<&'a ScalingDocs>,
    recorded: Option<&'a str>,
}

/// Reads the autoscaling of every desired service that wants it or has it recorded, and of every managed service
/// outside the manifests that has it recorded (for `--prune`), into `observed.scaling`.
pub async fn observe(desired: &[Desired], observed: &mut Observed, port: &dyn Autoscaling) -> Result<(), BackendError> {
    let mut wanted: Vec<Wanted> = Vec::new();
    for d in desired {
        let rec = recorded(observed.get(&d.ecs.cluster, &d.ecs.name));
        if d.ecs.autoscaling.is_some() || rec.is_some() {
            wanted.push(Wanted {
                key: (d.ecs.cluster.clone(), d.ecs.name.clone()),
                resource_id: resource_id(&d.ecs.cluster, &d.ecs.name),
                desired: d.ecs.autoscaling.as_ref(),
                recorded: rec,
            });
        }
    }
    for s in &observed.unlisted {
        if let Some(rec) = recorded(Some(s)) {
            wanted.push(Wanted {
                key: (s.cluster.clone(), s.name.clone()),
                resource_id: resource_id(&s.cluster, &s.name),
                desired: None,
                recorded: Some(rec),
            });
        }
    }
    let ids: Vec<String> = wanted.iter().map(|w| w.resource_id.clone()).collect();
    let mut targets = Vec::new();
    for chunk in ids.chunks(SCALABLE_TARGETS_BATCH) {
        targets.extend(port.scalable_targets(chunk).await?);
    }
    let mut found = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let target = targets.iter().find(|t| t.resource_id == w.resource_id).cloned();
        let policies = if needs_policies(w.desired, target.as_ref(), w.recorded) {
            Some(port.scaling_policies(&w.resource_id).await?)
        } else {
            None
        };
        found.push((w.key.clone(), ObservedScaling { target, policies }));
    }
    observed.scaling.extend(found);
    Ok(())
}

/// Carries out `steps` on the service `service_arn` (`resource`: its scalable resource), the tag last. A service
/// being deleted (`service_arn` None) keeps its tag: it goes with the service.
pub async fn converge(
    port: &dyn Autoscaling,
    ecs: &dyn Ecs,
    name: &str,
    resource: &str,
    service_arn: Option<&str>,
    steps: &ScalingSteps,
    progress: Progress<'_>,
) -> Result<(), BackendError> {
    for policy in &steps.delete {
        progress(name, &format!("deleting scaling policy {policy}"));
        port.delete_scaling_policy(resource, policy).await?;
    }
    if steps.deregister {
        progress(name, "deregistering its scalable target");
        port.deregister_scalable_target(resource).await?;
    }
    if let Some(target) = &steps.register {
        progress(name, &format!("registering its scalable target ({}..{})", target.min_capacity, target.max_capacity));
        port.register_scalable_target(target).await?;
    }
    for policy in &steps.put {
        progress(name, &format!("putting scaling policy {}", policy.policy_name));
        port.put_scaling_policy(policy).await?;
    }
    match (&steps.record, service_arn) {
        (Record::Keep, _) | (_, None) => {}
        (Record::Set(hash), Some(arn)) => ecs.tag_resource(arn, &state::autoscaling(hash)).await?,
        (Record::Remove, Some(arn)) => ecs.untag_resource(arn, &[TAG_AUTOSCALING.to_string()]).await?,
    }
    Ok(())
}

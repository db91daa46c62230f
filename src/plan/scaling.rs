//! Autoscaling in a plan: the rendered Application Auto Scaling documents × what Application Auto Scaling has →
//! the steps that converge it and the field changes a plan shows. Pure: no I/O.
//!
//! Compared field by field: the target's bounds always (DescribeScalableTargets is read for every service that
//! has or wants autoscaling, 50 a request), the policies whenever they were read, which the observe step does
//! only where something differs — bounds, a missing target, or the recorded hash of what was applied (the
//! `mcpfleet.io/autoscaling` tag). A converged fleet therefore plans no autoscaling step and reads no policy.
//! Only mcpfleet's own policies (named `<service>-<metric>`) are put or deleted; another policy on the target is
//! left alone.

use serde_json::Value;

use super::{Change, diff_values};
use crate::backend::{ScalableTarget, ScalingPolicy};
use crate::render::autoscaling::{ScalableTargetInput, ScalingDocs, ScalingPolicyInput, owned_metric, target_json};
use crate::render::json_of;

/// What Application Auto Scaling has for one service, as far as it was read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedScaling {
    /// The service's registered target; None when it has none.
    pub target: Option<ScalableTarget>,
    /// The policies on it, when they were read.
    pub policies: Option<Vec<ScalingPolicy>>,
}

/// What to do with the `mcpfleet.io/autoscaling` tag once the other steps are done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Record {
    /// It says the right thing already.
    #[default]
    Keep,
    /// Write this hash (the autoscaling applied).
    Set(String),
    /// Remove it (no autoscaling any more).
    Remove,
}

/// The writes that converge a service's autoscaling, in the order they run: mcpfleet's policies that are no
/// longer wanted are deleted, then the target is deregistered or (re-)registered, then policies are put, and the
/// tag is written last, so an interrupted apply is finished, not trusted, the next time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingSteps {
    pub delete: Vec<String>,
    pub deregister: bool,
    pub register: Option<ScalableTargetInput>,
    pub put: Vec<ScalingPolicyInput>,
    pub record: Record,
}

impl ScalingSteps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty()
            && !self.deregister
            && self.register.is_none()
            && self.put.is_empty()
            && self.record == Record::Keep
    }

    /// Whether these steps take the service's autoscaling away (which runs before the service's own update, so
    /// the autoscaler cannot move the count that update sets).
    pub fn removes(&self) -> bool {
        self.deregister || self.record == Record::Remove
    }
}

/// The steps and changes for one service: `service` its name, `desired` its rendered autoscaling (None without),
/// `recorded` the hash its tag records.
pub fn plan(
    service: &str,
    desired: Option<&ScalingDocs>,
    observed: &ObservedScaling,
    recorded: Option<&str>,
) -> (ScalingSteps, Vec<Change>) {
    let mut steps = ScalingSteps::default();
    let mut changes = Vec::new();
    let ours: Vec<&ScalingPolicy> =
        observed.policies.iter().flatten().filter(|p| owned_metric(service, &p.policy_name).is_some()).collect();
    let Some(d) = desired else {
        if let Some(t) = &observed.target {
            steps.delete = ours.iter().map(|p| p.policy_name.clone()).collect();
            steps.deregister = true;
            changes.push(Change { path: "autoscaling".into(), from: Some(bounds_json(t)), to: None });
        }
        if recorded.is_some() {
            steps.record = Record::Remove;
        }
        return (steps, changes);
    };
    let want = &d.register_scalable_target;
    let fresh = match &observed.target {
        None => {
            steps.register = Some(want.clone());
            let mut to = serde_json::json!({"min": want.min_capacity, "max": want.max_capacity});
            for p in &d.put_scaling_policies {
                to[p.metric().field()] = target_json(p.target_tracking_scaling_policy_configuration.target_value);
            }
            changes.push(Change { path: "autoscaling".into(), from: None, to: Some(to) });
            true
        }
        Some(t) => {
            for (field, have, to) in
                [("min", t.min_capacity, want.min_capacity), ("max", t.max_capacity, want.max_capacity)]
            {
                if have != to {
                    changes.push(Change {
                        path: format!("autoscaling.{field}"),
                        from: Some(have.into()),
                        to: Some(to.into()),
                    });
                }
            }
            if (t.min_capacity, t.max_capacity) != (want.min_capacity, want.max_capacity) {
                steps.register = Some(want.clone());
            }
            false
        }
    };
    // A target registered afresh has no policy yet (deregistering drops them); otherwise only the policies that
    // were read can be compared.
    let policies: Option<Vec<&ScalingPolicy>> =
        if fresh { Some(Vec::new()) } else { observed.policies.as_ref().map(|_| ours) };
    if let Some(have) = policies {
        for p in &d.put_scaling_policies {
            let base = format!("autoscaling.policies.{}", p.policy_name);
            let want_json = json_of(&p.target_tracking_scaling_policy_configuration);
            match have.iter().find(|h| h.policy_name == p.policy_name) {
                Some(h) if h.target_tracking.as_ref() == Some(&p.target_tracking_scaling_policy_configuration) => {}
                Some(h) => {
                    let from =
                        h.target_tracking.as_ref().map_or(Value::String("(another kind of policy)".into()), json_of);
                    diff_values(&base, &from, &want_json, &mut changes);
                    steps.put.push(p.clone());
                }
                None => {
                    // A new target's policies are its change's part already.
                    if !fresh {
                        changes.push(Change { path: base, from: None, to: Some(want_json) });
                    }
                    steps.put.push(p.clone());
                }
            }
        }
        for h in have.iter().filter(|h| !d.put_scaling_policies.iter().any(|p| p.policy_name == h.policy_name)) {
            let from = h.target_tracking.as_ref().map_or(Value::String("(another kind of policy)".into()), json_of);
            changes.push(Change {
                path: format!("autoscaling.policies.{}", h.policy_name),
                from: Some(from),
                to: None,
            });
            steps.delete.push(h.policy_name.clone());
        }
    }
    // A tag that records these documents already stays: an interrupted apply of other documents left the old
    // hash there, which is what makes the next plan read the policies again.
    let hash = d.hash();
    if recorded != Some(hash.as_str()) {
        steps.record = Record::Set(hash);
    }
    (steps, changes)
}

fn bounds_json(t: &ScalableTarget) -> Value {
    serde_json::json!({"min": t.min_capacity, "max": t.max_capacity})
}

/// Whether a service's policies must be read to plan it: it wants autoscaling and its target is registered but
/// the bounds or the recorded hash differ from the desired ones; or it no longer wants autoscaling and its target
/// is still registered (its own policies are deleted before the target goes).
pub fn needs_policies(desired: Option<&ScalingDocs>, target: Option<&ScalableTarget>, recorded: Option<&str>) -> bool {
    let Some(t) = target else { return false };
    match desired {
        None => true,
        Some(d) => {
            let want = &d.register_scalable_target;
            (t.min_capacity, t.max_capacity) != (want.min_capacity, want.max_capacity)
                || recorded != Some(d.hash().as_str())
        }
    }
}

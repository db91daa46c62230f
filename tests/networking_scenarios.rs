//! Changes of a service's networking alone (load balancers, Service Connect, the grace period) on the sim,
//! through the binary: they roll out on the same revision, a failed one is rolled back as a whole and held like a
//! failed image, and a successful one becomes what a later rollback goes back to.

mod common;

use common::lab::{ECR, Lab, history, service, writes};
use mcpfleet::backend::sim::{TICK_MS, World};
use mcpfleet::backend::{RolloutState, ServiceState};
use serde_json::Value;

fn status(lab: &Lab) -> (i32, Value) {
    let m = lab.manifests();
    lab.json(&["status", "-f", m.to_str().unwrap(), "-o", "json"])
}

fn save(lab: &Lab, w: &World) {
    std::fs::write(lab.state(), serde_json::to_vec(w).unwrap()).unwrap();
}

fn svc(lab: &Lab, name: &str) -> ServiceState {
    lab.world().services[&format!("mcp-prod/{name}")].state.clone()
}

/// The Service Connect client aliases a service reports, as `dnsName:port`.
fn aliases(s: &ServiceState) -> Vec<String> {
    let Some(sc) = s.service_connect_configuration.as_ref().filter(|c| c.enabled) else { return vec![] };
    sc.services
        .iter()
        .flat_map(|s| s.client_aliases.iter())
        .map(|a| format!("{}:{}", a.dns_name.as_deref().unwrap_or("-"), a.port))
        .collect()
}

/// ECS's default grace period, 0, and none reported are the same setting.
fn grace(s: &ServiceState) -> u32 {
    s.health_check_grace_period_seconds.unwrap_or(0)
}

const DATABASE_LB: &str = "  expose:\n    loadBalancers:\n      - targetGroup: mcp-database\n  stopTimeout: 60s\n";

/// Puts database behind the target group `mcp-database` (its health check probes database's `/health`), with the
/// grace period defaulting to the health check's start period, 20 s. Returns the target group's ARN.
fn attach_database_load_balancer(lab: &Lab) -> String {
    let arn = lab.ok(&["sim", "target-group", "mcp-database", "--health-path", "/health"]).trim().to_string();
    lab.edit_manifest("database.yaml", "  stopTimeout: 60s\n", DATABASE_LB);
    arn
}

#[test]
fn attaching_a_load_balancer_the_running_image_fails_is_rolled_back_whole_and_held() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    // database runs an image that is alive but never ready: without a load balancer it rolls out.
    lab.ok(&["sim", "push", &format!("{ECR}/database:v2.1.0"), "--platform", "linux/amd64", "--unready"]);
    lab.edit_manifest("database.yaml", "database:v2.0.1", "database:v2.1.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let before = svc(&lab, "database");
    let rev2 = lab.world().families["database"][1].arn.clone();
    assert_eq!(before.task_definition, rev2);
    assert!(before.load_balancers.is_empty() && grace(&before) == 0, "{before:#?}");

    let tg = attach_database_load_balancer(&lab);
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    assert_eq!(service(&plan, "database")["action"], "update", "{plan:#}");

    // Behind the target group its tasks never pass: ECS's circuit breaker rolls the deployment back, although it
    // runs the same revision as the one it goes back to.
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let database = service(&doc, "database");
    assert_eq!(database["outcome"], "rolled_back", "{doc:#}");
    let message = database["message"].as_str().unwrap();
    assert!(message.contains(&format!("Task failed ELB health checks in (target-group {tg})")), "{message}");

    // Nothing of the failed spec is left: same revision, no load balancer, the grace period and Service Connect
    // as they were, every task running.
    let after = svc(&lab, "database");
    assert_eq!(after.task_definition, rev2);
    assert!(after.load_balancers.is_empty(), "{after:#?}");
    assert_eq!(grace(&after), 0, "{after:#?}");
    assert_eq!(aliases(&after), aliases(&before));
    assert_eq!(after.network_configuration, before.network_configuration);
    let primary = after.primary().unwrap();
    assert_eq!((primary.rollout_state, after.running_count), (RolloutState::Completed, 2), "{after:#?}");
    assert_eq!(after.tags["mcpfleet.io/last-good"], rev2);
    assert_eq!(after.tags["mcpfleet.io/task-definition"], rev2);
    let failed = after.tags["mcpfleet.io/failed-spec-hash"].clone();
    assert_eq!(failed.len(), 32);
    assert_ne!(after.tags["mcpfleet.io/spec-hash"], failed, "the service's tags describe what runs");
    // The revision itself is good: only its new networking failed.
    assert_eq!(history(&lab, "database"), [(2, "running".into()), (1, "completed".into())]);

    // Held exactly like a failed image: plan says why and exits 0 with --detailed-exitcode, apply writes nothing,
    // and status, which describes what runs (the last good spec), sees no drift to correct.
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    let planned = service(&plan, "database");
    assert_eq!(planned["action"], "noop", "{plan:#}");
    assert!(planned["reason"].as_str().unwrap().contains("rollout failed; it is not deployed again"), "{plan:#}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!((code, writes(&doc)), (0, 0), "{doc:#}");
    let (code, doc) = status(&lab);
    assert_eq!(code, 0, "{doc:#}");
    let row = service(&doc, "database");
    assert_eq!((row["held"].as_bool(), row["drift"].as_bool()), (Some(false), Some(false)), "{row:#}");
    assert_eq!(row["rolloutState"], "COMPLETED", "{row:#}");

    // A ready image behind the same target group rolls out and becomes last good.
    lab.ok(&["sim", "push", &format!("{ECR}/database:v2.1.1"), "--platform", "linux/amd64"]);
    lab.edit_manifest("database.yaml", "database:v2.1.0", "database:v2.1.1");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let now = svc(&lab, "database");
    assert_eq!(now.load_balancers.len(), 1);
    assert_eq!(now.load_balancers[0].target_group_arn, tg);
    assert_eq!(grace(&now), 20, "the health check's start period");
    assert_eq!(now.tags["mcpfleet.io/last-good"], now.task_definition);
    assert_eq!(lab.plan().0, 0);
}

/// Moves the sim's clock tick by tick until `done` holds for the service `name` (at most `max_secs`).
fn advance_until(lab: &Lab, name: &str, max_secs: u64, done: impl Fn(&ServiceState) -> bool) -> World {
    let mut w = lab.world();
    let key = format!("mcp-prod/{name}");
    let end = w.now_ms + max_secs * 1000;
    while !done(&w.services[&key].state) {
        assert!(w.now_ms < end, "not reached in {max_secs}s: {:#?}", w.services[&key].state);
        let next = w.now_ms + TICK_MS;
        w.advance_to(next);
    }
    w
}

/// Marks the image `repository:tag` (un)healthy in place, as a dependency it needs at start going away (or back).
fn set_unhealthy(w: &mut World, repository: &str, tag: &str, unhealthy: bool) {
    let repo = w.repositories.get_mut(&format!("{ECR}/{repository}")).unwrap();
    let digest = repo.tags[tag].clone();
    repo.images.get_mut(&digest).unwrap().unhealthy = unhealthy;
}

const SEARCH_ALIAS: &str = "  expose: { serviceConnect: { dnsName: find, port: 80 } }\n  port: ";

#[test]
fn a_failed_service_connect_change_is_rolled_back_by_ecs_and_held_before_anyone_records_it() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let before = svc(&lab, "search");
    assert_eq!(aliases(&before), ["search.mcp.internal:3000"]);

    // The image's new tasks now fail (a dependency it pulls at start is gone) and search moves to another alias:
    // applied without --wait, nobody watches.
    let mut w = lab.world();
    set_unhealthy(&mut w, "search", "v0.9.0", true);
    save(&lab, &w);
    lab.edit_manifest("search.yaml", "  port: ", SEARCH_ALIAS);
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(aliases(&svc(&lab, "search")), ["find.mcp.internal:80"]);

    // The circuit breaker trips and goes back to the last completed deployment: the same revision with the
    // Service Connect it had. The dependency is back by the time the rollback's tasks start.
    let mut w = advance_until(&lab, "search", 600, |s| {
        s.primary().is_some_and(|p| p.rollout_state_reason.contains("circuit breaker: rolling back"))
    });
    set_unhealthy(&mut w, "search", "v0.9.0", false);
    w.advance_to(w.now_ms + 300_000);
    save(&lab, &w);
    let after = svc(&lab, "search");
    assert_eq!(aliases(&after), ["search.mcp.internal:3000"], "{after:#?}");
    assert_eq!(after.task_definition, before.task_definition);
    assert_eq!(after.primary().unwrap().rollout_state, RolloutState::Completed);

    // plan, which has the spec at hand, already sees it held, not as drift to correct.
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    let planned = service(&plan, "search");
    assert_eq!(planned["action"], "noop", "{plan:#}");
    assert!(planned["reason"].as_str().unwrap().contains("rollout failed"), "{plan:#}");

    // apply records it (exit 3), and has nothing to put back: ECS already did.
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 3, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "rolled_back", "{doc:#}");
    assert!(search["message"].as_str().unwrap().contains("circuit breaker"), "{doc:#}");
    assert_eq!(doc["apiCalls"]["calls"].get("UpdateService"), None, "{doc:#}");
    let after = svc(&lab, "search");
    assert_eq!(after.tags["mcpfleet.io/failed-spec-hash"].len(), 32);
    assert_eq!(history(&lab, "search"), [(1, "running".into())]);
    let (_, doc) = status(&lab);
    let row = service(&doc, "search");
    assert_eq!(row["drift"], false, "{row:#}");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!((code, writes(&doc)), (0, 0), "{doc:#}");
}

#[test]
fn a_successful_networking_change_is_what_a_later_rollback_goes_back_to() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let rev1 = lab.world().families["search"][0].arn.clone();

    // A Service Connect change alone rolls out on the same revision and is recorded as last good.
    lab.edit_manifest("search.yaml", "  port: ", SEARCH_ALIAS);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let search = service(&doc, "search");
    assert_eq!(search["outcome"], "updated", "{doc:#}");
    assert!(search["message"].as_str().unwrap().ends_with("rollout completed"), "{doc:#}");
    let s = svc(&lab, "search");
    assert_eq!((s.task_definition.as_str(), aliases(&s)), (rev1.as_str(), vec!["find.mcp.internal:80".to_string()]));
    assert_eq!(s.tags["mcpfleet.io/last-good"], rev1);
    assert!(!s.tags.contains_key("mcpfleet.io/failed-spec-hash"), "{:?}", s.tags);
    assert_eq!(history(&lab, "search"), [(1, "running".into())]);
    assert_eq!(lab.plan().0, 0);

    // A failing image is rolled back to search:1 as it last ran: with the new alias, not the one it was
    // registered with.
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.0"), "--unhealthy"]);
    lab.edit_manifest("search.yaml", "search:v0.9.0", "search:v1.0.0");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 3, "{doc:#}");
    let s = svc(&lab, "search");
    assert_eq!(s.task_definition, rev1);
    assert_eq!(aliases(&s), ["find.mcp.internal:80"]);

    // The same holds for an operator's rollback, and for a networking change applied without --wait: search:3
    // moves to yet another alias; going back restores search:1 with the alias it last completed with, in the
    // same UpdateService.
    lab.ok(&["sim", "push", &format!("{ECR}/search:v1.0.1")]);
    lab.edit_manifest("search.yaml", "search:v1.0.0", "search:v1.0.1");
    lab.edit_manifest("search.yaml", "dnsName: find, port: 80", "dnsName: lookup, port: 81");
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(aliases(&svc(&lab, "search")), ["lookup.mcp.internal:81"]);
    let out = lab.ok(&["rollback", "search", "--cluster", "mcp-prod", "--wait"]);
    assert!(out.contains("to search:1"), "{out}");
    let s = svc(&lab, "search");
    assert_eq!((s.task_definition.as_str(), aliases(&s)), (rev1.as_str(), vec!["find.mcp.internal:80".to_string()]));
    assert_eq!(s.primary().unwrap().rollout_state, RolloutState::Completed);
    assert_eq!(s.deployments.len(), 1, "one deployment took it back: {s:#?}");
}

#[test]
fn an_operator_rollback_puts_back_the_load_balancers_and_grace_period_of_the_revision_it_returns_to() {
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let rev1 = lab.world().families["database"][0].arn.clone();
    // database:2 is a new image behind a load balancer (grace period 20 s); it rolls out.
    lab.ok(&["sim", "push", &format!("{ECR}/database:v2.1.1"), "--platform", "linux/amd64"]);
    lab.edit_manifest("database.yaml", "database:v2.0.1", "database:v2.1.1");
    let tg = attach_database_load_balancer(&lab);
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let s = svc(&lab, "database");
    assert_eq!((s.load_balancers.len(), grace(&s)), (1, 20));
    assert_eq!(s.load_balancers[0].target_group_arn, tg);

    let out = lab.ok(&["rollback", "database", "--cluster", "mcp-prod", "--wait"]);
    assert_eq!(out.trim(), "database: rolled back from database:2 to database:1");
    let s = svc(&lab, "database");
    assert_eq!(s.task_definition, rev1);
    assert!(s.load_balancers.is_empty(), "database:1 ran without a load balancer: {s:#?}");
    assert_eq!(grace(&s), 0);
    assert_eq!(s.primary().unwrap().rollout_state, RolloutState::Completed);
    assert_eq!(s.deployments.len(), 1, "{s:#?}");
    // The operator's choice holds.
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    assert!(service(&plan, "database")["reason"].as_str().unwrap().contains("rollout failed"), "{plan:#}");
}

#[tokio::test]
async fn mcpfleets_own_rollback_puts_the_networking_back_in_the_same_update_as_the_revision() {
    use mcpfleet::reconcile::settle::{Pending, Policy, Settled, pending, settle_service};
    use mcpfleet::reconcile::watch::{FailureKind, RolloutResult};
    let lab = Lab::new();
    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let rev1 = lab.world().families["database"][0].arn.clone();
    // A load balancer is attached to database, applied without --wait: its deployment is in flight when the
    // rollout is judged failed by mcpfleet itself (its progress deadline), before ECS went back by itself.
    attach_database_load_balancer(&lab);
    assert_eq!(lab.apply(&[]).0, 0);
    let sim = mcpfleet::backend::sim::Sim::open(&lab.state()).unwrap();
    let backend = sim.backend();
    let fleet = mcpfleet::spec::load_paths(&[lab.manifests()]).unwrap();
    let desired = mcpfleet::reconcile::desired_state(&fleet, &backend).await.unwrap();
    let d = desired.iter().find(|d| d.ecs.name == "database").unwrap();
    let ecs = backend.ecs.as_ref();
    let state = ecs.describe_services("mcp-prod", &["database".into()]).await.unwrap().services.remove(0);
    assert_eq!((state.load_balancers.len(), grace(&state)), (1, 20));
    let applied = mcpfleet::state::applied_networking(&state, Some(&d.ecs));
    let Pending::Rollout(target) = pending(&state, 600, applied.as_ref()) else { panic!("a rollout in flight") };
    assert_eq!(target.task_definition, rev1, "the revision did not change");

    sim.reset_stats();
    let failed = RolloutResult::Failed { kind: FailureKind::DeadlineExceeded, reason: "too slow".into() };
    let ports = mcpfleet::reconcile::settle::Ports { ecs, clock: backend.clock.as_ref(), gate: None };
    let settled = settle_service(ports, &state, &target, &failed, Policy::of(&d.rollout), None).await.unwrap();
    assert_eq!(settled, Settled::RolledBack { reason: "too slow".into(), to: rev1.clone(), by_ecs: false });
    assert_eq!(sim.stats().get("UpdateService"), 1, "{:?}", sim.stats());
    let back = ecs.describe_services("mcp-prod", &["database".into()]).await.unwrap().services.remove(0);
    assert_eq!(back.task_definition, rev1);
    assert!(back.load_balancers.is_empty(), "{back:#?}");
    assert_eq!(grace(&back), 0);
    assert_eq!(aliases(&back), aliases(&state));
    // One new deployment takes the same revision back without the load balancer.
    let primary = back.primary().unwrap();
    assert_ne!(primary.id, state.primary().unwrap().id);
    assert_eq!(primary.rollout_state, RolloutState::InProgress);
    assert_eq!(back.tags["mcpfleet.io/failed-spec-hash"], mcpfleet::plan::spec_hash_of(&d.ecs));
    assert_eq!(lab.world().families["database"][0].tags["mcpfleet.io/outcome"], "completed");
}

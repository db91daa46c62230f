//! load + validate + plan of a converged fleet of 1,000 and 10,000 services (the hot path of every `plan`,
//! `apply` and controller pass). Resolution runs against an in-memory sim, so what is timed is mcpfleet's own
//! work: parsing, validation, rendering, hashing and the plan itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcpfleet::backend::ServiceState;
use mcpfleet::backend::sim::Sim;
use mcpfleet::plan;
use mcpfleet::reconcile::{self, ApplyOptions};
use mcpfleet::spec::load_str;
use mcpfleet::testkit::{fleet_yaml, seeded_world};

/// A converged sim for `n` services and the observed states, keyed by name.
fn converged(n: usize) -> (String, Arc<Sim>, BTreeMap<String, ServiceState>) {
    let text = fleet_yaml(n, 5, 3);
    let sim = Sim::in_memory(seeded_world(5, 3));
    sim.set_throttling(false);
    let backend = sim.backend();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let observed = rt.block_on(async {
        let fleet = load_str("fleet.yaml", &text).unwrap();
        let desired = reconcile::desired_state(&fleet, &backend).await.unwrap();
        let observed = reconcile::observe(&desired, backend.ecs.as_ref(), false).await.unwrap();
        let p = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
        reconcile::apply(&desired, &p, &observed, backend.ecs.as_ref(), &ApplyOptions::default(), &|_, _| {}).await;
        reconcile::observe(&desired, backend.ecs.as_ref(), false).await.unwrap()
    });
    let by_name = observed.services.into_values().map(|s| (s.name.clone(), s)).collect();
    (text, sim, by_name)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_validate_plan");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let (text, sim, observed) = converged(n);
        let backend = sim.backend();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let fleet = load_str("fleet.yaml", &text).unwrap();
                let desired = rt.block_on(reconcile::desired_state(&fleet, &backend)).unwrap();
                let plans: Vec<_> =
                    desired.iter().map(|d| plan::plan_service(&d.ecs, observed.get(&d.ecs.name), None)).collect();
                assert!(plans.iter().all(|p| p.action == plan::Action::Noop));
                plans.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

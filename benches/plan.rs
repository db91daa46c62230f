//! load + validate + resolve + render + plan of a converged fleet of 1,000 and 10,000 services (the hot path of
//! every `plan`, `apply` and controller pass). Resolution runs against an in-memory sim and the observation is
//! taken once beforehand, so what is timed is mcpfleet's own work: parsing, validation, rendering, hashing and
//! the whole-fleet plan (`reconcile::plan_fleet`: the unmanaged-name check, every service's decision and the
//! delete candidates).

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcpfleet::backend::sim::Sim;
use mcpfleet::plan;
use mcpfleet::reconcile::{self, ApplyOptions, Observed};
use mcpfleet::spec::load_str;
use mcpfleet::testkit::{fleet_yaml, seeded_world};

// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A converged sim for `n` services and what `plan` observes of it (the services and their cluster's listing).
fn converged(n: usize) -> (String, Arc<Sim>, Observed) {
    let text = fleet_yaml(n, 5, 3);
    let sim = Sim::in_memory(seeded_world(5, 3));
    sim.set_throttling(false);
    let backend = sim.backend();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let observed = rt.block_on(async {
        let fleet = load_str("fleet.yaml", &text).unwrap();
        let desired = reconcile::desired_state(&fleet, &backend).await.unwrap();
        let observed = reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap();
        let p = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
        reconcile::apply(&desired, &p, &observed, backend.ecs.as_ref(), &ApplyOptions::default(), &|_, _| {}).await;
        reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap()
    });
    (text, sim, observed)
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
                let plan = rt.block_on(reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref())).unwrap();
                assert_eq!(plan.count(plan::Action::Noop), n);
                plan.services.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

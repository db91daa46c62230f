//! One load + resolve + render + plan pass over a converged synthetic fleet, for instruction counting:
//! `valgrind --tool=callgrind target/release/examples/stage_times 1000`.
use mcpfleet::backend::sim::Sim;
use mcpfleet::reconcile::{self, ApplyOptions};
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let text = mcpfleet::testkit::fleet_yaml(n, 5, 3);
    let sim = Sim::in_memory(mcpfleet::testkit::seeded_world(5, 3));
    sim.set_throttling(false);
    let backend = sim.backend();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let observed = rt.block_on(async {
        let fleet = mcpfleet::spec::load_str("f.yaml", &text).unwrap();
        let desired = reconcile::desired_state(&fleet, &backend).await.unwrap();
        let observed = reconcile::observe(&desired, backend.ecs.as_ref(), false).await.unwrap();
        let p = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
        reconcile::apply(&desired, &p, &observed, backend.ecs.as_ref(), &ApplyOptions::default(), &|_, _| {}).await;
        reconcile::observe(&desired, backend.ecs.as_ref(), false).await.unwrap()
    });
    let t = std::time::Instant::now();
    let fleet = mcpfleet::spec::load_str("f.yaml", &text).unwrap();
    let desired = rt.block_on(reconcile::desired_state(&fleet, &backend)).unwrap();
    let noops = desired
        .iter()
        .filter(|d| {
            mcpfleet::plan::plan_service(&d.ecs, observed.get(&d.ecs.cluster, &d.ecs.name), None).action
                == mcpfleet::plan::Action::Noop
        })
        .count();
    println!("{noops} of {n} noop in {:?}", t.elapsed());
}

//! One load + validate + resolve + render + plan pass over a converged synthetic fleet, with the time of each
//! stage. For instruction counts, collect only the measured pass:
//! `valgrind --tool=callgrind --toggle-collect='*stage_times::measured*' target/release/examples/stage_times 1000`.
//! A second argument repeats the pass and prints the fastest and the median total: on a shared machine the
//! fastest of many passes is the steadiest figure, and the repeats give `perf record` enough samples.
use std::time::{Duration, Instant};

use mcpfleet::backend::Backend;
use mcpfleet::backend::sim::Sim;
use mcpfleet::reconcile::{self, ApplyOptions, Observed};

// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        let observed = reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap();
        let p = reconcile::plan_fleet(&desired, &observed, backend.ecs.as_ref()).await.unwrap();
        reconcile::apply(&desired, &p, &observed, backend.ecs.as_ref(), &ApplyOptions::default(), &|_, _| {}).await;
        reconcile::observe(&desired, backend.ecs.as_ref(), true).await.unwrap()
    });
    let repeats: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let mut totals = Vec::with_capacity(repeats);
    let mut fastest = [Duration::MAX; 3];
    for _ in 0..repeats {
        let (noops, times) = measured(&rt, &text, &backend, &observed);
        let [load, resolve_render, plan] = times;
        totals.push(load + resolve_render + plan);
        for (f, t) in fastest.iter_mut().zip(times) {
            *f = (*f).min(t);
        }
        if repeats == 1 {
            println!(
                "{noops} of {n} noop in {:?} (load+validate {load:?}, resolve+render {resolve_render:?}, plan {plan:?})",
                load + resolve_render + plan
            );
        }
    }
    if repeats > 1 {
        totals.sort();
        let [load, resolve_render, plan] = fastest;
        println!(
            "{repeats} passes over {n} services: fastest {:?}, median {:?} (fastest stages: load+validate {load:?}, \
             resolve+render {resolve_render:?}, plan {plan:?})",
            totals[0],
            totals[repeats / 2]
        );
    }
}

/// The measured pass: what `mcpfleet plan` does after observing.
#[inline(never)]
fn measured(
    rt: &tokio::runtime::Runtime,
    text: &str,
    backend: &Backend,
    observed: &Observed,
) -> (usize, [Duration; 3]) {
    let t = Instant::now();
    let fleet = mcpfleet::spec::load_str("f.yaml", text).unwrap();
    let load = t.elapsed();
    let t = Instant::now();
    let desired = rt.block_on(reconcile::desired_state(&fleet, backend)).unwrap();
    let resolve_render = t.elapsed();
    let t = Instant::now();
    let plan = rt.block_on(reconcile::plan_fleet(&desired, observed, backend.ecs.as_ref())).unwrap();
    let plan_time = t.elapsed();
    (plan.count(mcpfleet::plan::Action::Noop), [load, resolve_render, plan_time])
}

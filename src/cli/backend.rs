//! Builds the ports the global flags ask for, with ECS's rate limits on the client side.

use std::sync::Arc;

use mcpfleet::backend::Backend;
use mcpfleet::backend::limits::Limited;
use mcpfleet::backend::sim::Sim;

use super::{Backend as BackendKind, Cli};

/// The backend of a command, and the sim behind it when there is one (for its call counts).
pub struct Connected {
    pub backend: Backend,
    pub sim: Option<Arc<Sim>>,
}

pub fn connect(cli: &Cli) -> anyhow::Result<Connected> {
    match cli.backend {
        BackendKind::Sim => {
            let sim = Sim::open(&cli.sim_state)?;
            let mut backend = sim.backend();
            backend.ecs = Arc::new(Limited::new(backend.ecs.clone(), backend.clock.clone()));
            Ok(Connected { backend, sim: Some(sim) })
        }
        BackendKind::Aws => {
            anyhow::bail!("the aws backend is not part of this build yet; use `--backend sim` (see README: quickstart)")
        }
    }
}

/// Opens the sim state directly (the `sim` subcommands act on it whatever `--backend` says).
pub fn open_sim(cli: &Cli) -> anyhow::Result<Arc<Sim>> {
    Ok(Sim::open(&cli.sim_state)?)
}

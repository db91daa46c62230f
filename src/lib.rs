//! mcpfleet: a Kubernetes-style controller for fleets of MCP servers on AWS ECS/Fargate.
//!
//! Layers, from the inside out: [`spec`] (manifests → a validated fleet), [`render`] (a validated service → the
//! exact ECS and Docker Compose documents), and the `mcpfleet` binary's commands (in `src/cli/`).

pub mod backend;
pub mod bridge;
pub mod controller;
pub mod cost;
pub mod plan;
pub mod probe;
pub mod reconcile;
pub mod render;
pub mod spec;
pub mod state;
#[doc(hidden)]
pub mod testkit;
pub mod tls;

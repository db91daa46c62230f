//! The `mcpfleet` binary: parses the command line, sets up logging and maps outcomes to exit codes
//! (0 success, 1 error, 2 changes found by `plan --detailed-exitcode`, 3 a failed rollout, 4 `--wait` stopped at
//! `--timeout` with a rollout still in progress).

mod cli;

use std::process::ExitCode;

// mimalloc: loading, rendering and planning a fleet make many small, short-lived allocations, where it is markedly
// faster than the system allocator (see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}

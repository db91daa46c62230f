//! The `mcpfleet` binary: parses the command line, sets up logging and maps outcomes to exit codes
//! (0 success, 1 error, 2 changes found by `plan --detailed-exitcode`, 3 a failed rollout).

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}

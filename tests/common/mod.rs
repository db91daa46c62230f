//! Helpers shared by the integration tests: the binary under test, the test venv's Python, and reading a
//! controller's endpoints.

#![allow(dead_code)]

pub mod aws_lab;
pub mod bridge;
pub mod clock;
pub mod controller;
pub mod lab;
pub mod mcp;
pub mod metrics;
pub mod registry;

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The `mcpfleet` binary, run from the repository root so paths in output are stable.
pub fn mcpfleet() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("mcpfleet").expect("binary is built");
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env_remove("MCPFLEET_BACKEND").env_remove("MCPFLEET_SIM_STATE").env_remove("MCPFLEET_LOG");
    cmd
}

/// The test venv's interpreter (`MCPFLEET_TEST_PYTHON`, else `.venv/bin/python`). Tests that need it fail loudly
/// when it is missing: they are part of the suite, never skipped.
pub fn python() -> PathBuf {
    let path = std::env::var_os("MCPFLEET_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run `scripts/test.sh` (it creates .venv from requirements-test.txt) or set MCPFLEET_TEST_PYTHON",
        path.display()
    );
    path
}

/// The exit code and stdout (as JSON) of a finished command; the panic message shows its stderr.
pub fn json_output(args: &[&str], out: &std::process::Output) -> (i32, serde_json::Value) {
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), doc)
}

/// Runs a repository script with the venv's Python, feeding `stdin`; returns (success, stdout+stderr).
pub fn run_python_script(script: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    let out = child.wait_with_output().expect("python finishes");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

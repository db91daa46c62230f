//! The GitHub Actions example (`examples/github-actions/mcpfleet.yml`) is a valid workflow by GitHub's schema
//! (check-jsonschema's vendored copy, no network), authenticates by OIDC role assumption rather than stored keys,
//! and runs only mcpfleet commands that this binary accepts.

mod common;

use std::path::Path;
use std::process::Command;

const WORKFLOW: &str = "examples/github-actions/mcpfleet.yml";

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(common::python())
        .args(["-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"])
        .arg(path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("No module named"), "check-jsonschema is missing from the test venv: {text}");
    (out.status.success(), text)
}

#[test]
fn the_example_workflow_is_valid_by_githubs_schema() {
    let (ok, text) = check(Path::new(WORKFLOW));
    assert!(ok, "{text}");
    // The check can fail: the same workflow with a job that has no `runs-on` is refused.
    let broken = tempfile::tempdir().unwrap();
    let copy = broken.path().join("mcpfleet.yml");
    let original = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(WORKFLOW)).unwrap();
    std::fs::write(&copy, original.replacen("    runs-on: ubuntu-latest\n", "", 2)).unwrap();
    let (ok, text) = check(&copy);
    assert!(!ok, "a job without runs-on passed: {text}");
}

#[test]
fn the_example_assumes_roles_by_oidc_and_runs_commands_mcpfleet_accepts() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(WORKFLOW)).unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["permissions"]["id-token"], "write");
    assert!(!text.contains("aws-access-key-id") && !text.contains("secrets."), "stored keys in the example");
    let mut commands = Vec::new();
    for (name, job) in doc["jobs"].as_object().unwrap() {
        let steps = job["steps"].as_array().unwrap();
        let roles: Vec<&str> = steps.iter().filter_map(|s| s["with"]["role-to-assume"].as_str()).collect();
        assert_eq!(roles.len(), 1, "{name}: one role assumed");
        for run in steps.iter().filter_map(|s| s["run"].as_str()) {
            commands.extend(run.lines().map(str::trim).filter(|l| l.starts_with("mcpfleet ")).map(str::to_string));
        }
    }
    assert_eq!(commands.len(), 4, "{commands:?}");
    for line in &commands {
        // The arguments as the shell would pass them, variables given values and output redirection dropped.
        let line = line.split(['>']).next().unwrap().replace("\"$FLEET\"", "s3://fleet-config/prod/fleet.json");
        let line = line.replace("\"$MESSAGE\"", "message");
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        // `--help` after the arguments: clap checks every argument before it prints the help.
        let mut help = args.clone();
        help.push("--help");
        common::mcpfleet().args(&help).assert().success();
    }
}

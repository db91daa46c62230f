//! Broken input on the backend side, through the real binary: a sim state file broken by hand, an out-of-range
//! `sim edit`, a command waiting for the sim's state lock, a repository that does not exist, and missing AWS
//! credentials. Each gets one clear error (exit 1), never a panic, and changes nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lab::{ECR, Lab};

/// The binary as a `std` command, to spawn it or clear its environment.
fn mcpfleet_std() -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut cmd = std::process::Command::cargo_bin("mcpfleet").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env_remove("MCPFLEET_BACKEND")
        .env_remove("MCPFLEET_SIM_STATE")
        .env_remove("MCPFLEET_LOG")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs `plan` over the lab's manifests; returns (exit code, stderr).
fn plan(lab: &Lab) -> (i32, String) {
    let m = lab.manifests();
    let out = lab.run(&["plan", "-f", m.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_broken_sim_state_file_is_one_located_error_and_is_left_as_it_was() {
    let lab = Lab::new();
    let (code, doc) = lab.apply(&["--wait"]);
    assert_eq!(code, 0, "{doc:#}");
    let good = std::fs::read_to_string(lab.state()).unwrap();
    let path = lab.state().display().to_string();
    // A pretty-printed copy, so that the position of a field is a line of its own.
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&good).unwrap()).unwrap();
    let line_of = |needle: &str| pretty.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let desired = line_of("\"desiredCount\"");

    let cases: Vec<(&str, String, String)> = vec![
        ("empty", String::new(), format!("{path}: not a valid sim state file: the file is empty")),
        (
            "truncated",
            good[..good.len() / 2].to_string(),
            format!("{path}:1:{}: not a valid sim state file:", good.len() / 2),
        ),
        ("not JSON", "services: {}\n".into(), format!("{path}:1:1: not a valid sim state file: expected value")),
        ("an array", "[]".into(), format!("{path}:1:2: not a valid sim state file: invalid length 0")),
        (
            "a wrong type",
            pretty.replacen("\"desiredCount\": 2", "\"desiredCount\": \"two\"", 1),
            format!("{path}:{desired}:"),
        ),
        (
            "a count beyond ECS's quota",
            pretty.replacen("\"desiredCount\": 2", "\"desiredCount\": 4000000000", 1),
            format!("{path}:{desired}:"),
        ),
        (
            "trailing text",
            format!("{good}\n}}"),
            format!("{path}:2:1: not a valid sim state file: trailing characters"),
        ),
    ];
    for (what, text, want) in cases {
        std::fs::write(lab.state(), &text).unwrap();
        let (code, stderr) = plan(&lab);
        assert_eq!(code, 1, "{what}: {stderr}");
        assert!(stderr.starts_with(&format!("error: {want}")), "{what}: want `{want}…`, got:\n{stderr}");
        assert!(stderr.contains("delete it to start the sim from an empty world"), "{what}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: one line:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert_eq!(std::fs::read_to_string(lab.state()).unwrap(), text, "{what}: the file is left as it was");
    }

    // The field is named, with what is wrong with it.
    std::fs::write(lab.state(), pretty.replacen("\"desiredCount\": 2", "\"desiredCount\": \"two\"", 1)).unwrap();
    let (_, stderr) = plan(&lab);
    assert!(stderr.contains(".state.desiredCount: invalid type: string \"two\", expected u32"), "{stderr}");
    std::fs::write(lab.state(), pretty.replacen("\"desiredCount\": 2", "\"desiredCount\": 4000000000", 1)).unwrap();
    let (_, stderr) = plan(&lab);
    assert!(stderr.contains(".state.desiredCount: 4000000000 is above ECS's 5000 tasks per service"), "{stderr}");
}

#[test]
fn a_hand_edited_sim_state_without_a_deployment_configuration_still_simulates() {
    let lab = Lab::new();
    let m = lab.manifests();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(lab.state()).unwrap()).unwrap();
    for svc in state["services"].as_object_mut().unwrap().values_mut() {
        svc["state"]["deploymentConfiguration"] = serde_json::Value::Null;
    }
    std::fs::write(lab.state(), serde_json::to_vec(&state).unwrap()).unwrap();
    // Watching search's new rollout moves the clock: the other services, still rolling out, are simulated with
    // ECS's default configuration.
    lab.edit_manifest("search.yaml", "replicas: 1", "replicas: 2");
    let out = lab.run(&["apply", "-f", m.to_str().unwrap(), "--wait"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let world = lab.world();
    for name in ["documents", "database"] {
        let svc = &world.services[&format!("mcp-prod/{name}")].state;
        assert_eq!(svc.deployment_configuration, None, "{name} was not touched by apply");
        assert_eq!((svc.running_count, svc.desired_count), (2, 2), "{name} rolled out");
    }
}

#[test]
fn sim_edit_desired_count_is_bounded_as_ecs_bounds_it() {
    let lab = Lab::new();
    let (code, doc) = lab.apply(&[]);
    assert_eq!(code, 0, "{doc:#}");
    let before = std::fs::read(lab.state()).unwrap();
    for n in ["5001", "4294967296", "-1", "many"] {
        let out = lab.run(&["sim", "edit", "search", "--cluster", "mcp-prod", "--desired-count", n]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{n}: {stderr}");
        assert!(!stderr.contains("panicked"), "{n}: {stderr}");
        assert_eq!(std::fs::read(lab.state()).unwrap(), before, "{n}: nothing changed");
    }
    let out = lab.run(&["sim", "edit", "search", "--cluster", "mcp-prod", "--desired-count", "5001"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5001 is above ECS's 5000 tasks per service"), "{stderr}");
    let out = lab.ok(&["sim", "edit", "search", "--cluster", "mcp-prod", "--desired-count", "5000"]);
    assert!(out.contains("desired 5000"), "{out}");
}

#[test]
fn a_command_waiting_for_the_sim_state_lock_says_so_once() {
    let lab = Lab::new();
    // Hold the lock as another mcpfleet command would.
    let held = std::fs::File::options().write(true).open(lab.state().with_extension("lock")).unwrap();
    held.lock().unwrap();
    let mut child = mcpfleet_std()
        .args(["--backend", "sim", "--sim-state", lab.state().to_str().unwrap(), "sim", "secret", "late"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60)).expect("the waiting command says why it waits");
    assert!(first.starts_with("waiting for the sim state lock held by another mcpfleet command"), "{first}");
    assert!(child.try_wait().unwrap().is_none(), "it waits while the lock is held");
    held.unlock().unwrap();
    let status = child.wait().unwrap();
    let rest: Vec<String> = rx.iter().collect();
    assert!(status.success(), "{rest:?}");
    assert!(rest.iter().all(|l| !l.contains("waiting for the sim state lock")), "said once: {rest:?}");
    assert!(lab.world().secrets.contains_key("late"), "it ran once the lock was free");
}

#[test]
fn a_missing_repository_is_reported_as_such_not_as_a_missing_tag() {
    let lab = Lab::new();
    lab.edit_manifest("search.yaml", "mcp/search:", "mcp/serch:");
    let (code, stderr) = plan(&lab);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("search.yaml:10): spec.image: repository `{ECR}/serch` not found")), "{stderr}");
    assert!(!stderr.contains("tag `"), "{stderr}");
    // The other services resolve: only the one naming the missing repository is reported.
    assert!(stderr.starts_with("error: 1 problem resolving the fleet's references (1 image)"), "{stderr}");
}

#[test]
fn missing_aws_credentials_are_one_short_error() {
    let home = tempfile::tempdir().unwrap();
    let m = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let started = Instant::now();
    let out = mcpfleet_std()
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["plan", "-f", m.to_str().unwrap(), "--region", "us-east-1"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, once:\n{stderr}");
    assert!(stderr.starts_with("error: AWS credentials are missing or invalid: no providers in chain"), "{stderr}");
    assert!(stderr.contains("environment, shared config/credentials files, SSO"), "says what was tried: {stderr}");
    assert!(stderr.contains("--backend sim"), "{stderr}");
    assert!(!stderr.contains("CredentialsNotLoaded"), "no SDK debug dump without -v: {stderr}");
    assert!(stderr.len() < 400, "short: {} characters", stderr.len());
    assert!(out.stdout.is_empty());
    // Nothing is attempted over the network: no per-request failures, no timeouts to wait out.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");

    // -v shows what each provider of the chain answered.
    let out = mcpfleet_std()
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args(["plan", "-f", m.to_str().unwrap(), "--region", "us-east-1", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("provider=Environment") && stderr.contains("provider=Ec2InstanceMetadata"), "{stderr}");
}

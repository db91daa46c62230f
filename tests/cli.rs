//! The `validate`, `render` and `schema` commands as a user runs them: exit codes, messages and documents; and how
//! every command reports an error (usage, `-o json`, a missing service).

mod common;

use common::lab::Lab;
use common::{json_output, mcpfleet, run_python_script};
use predicates::prelude::*;

#[test]
fn example_manifests_validate() {
    mcpfleet()
        .args(["validate", "-f", "manifests/"])
        .assert()
        .success()
        .stdout("valid: 4 services (database, documents, everything, search)\n");
}

#[test]
fn controller_manifest_validates_on_its_own() {
    mcpfleet().args(["validate", "-f", "manifests/controller/"]).assert().success();
}

#[test]
fn invalid_fixtures_report_every_mistake_with_file_and_line() {
    // Each fixture file is a fleet of its own with exactly one mistake, so a FleetDefaults in one cannot change
    // what another reports; a directory holds a mistake that takes several files (a service defined twice).
    let mut fixtures: Vec<_> =
        std::fs::read_dir("tests/fixtures/invalid").unwrap().map(|e| e.unwrap().path()).collect();
    fixtures.sort();
    let mut report = String::new();
    for fixture in &fixtures {
        let path = fixture.to_str().unwrap();
        let out = mcpfleet().args(["validate", "-f", path]).assert().code(1).get_output().clone();
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8(out.stderr).unwrap();
        let diagnostics: Vec<&str> = stderr.lines().filter(|l| l.starts_with(path)).collect();
        assert_eq!(diagnostics.len(), 1, "{path} should report exactly one mistake:\n{stderr}");
        assert!(stderr.ends_with("error: 1 problem found in the manifests\n"), "{stderr}");
        report.push_str(diagnostics[0]);
        report.push('\n');
    }
    insta::assert_snapshot!("invalid_fixtures", report);
}

#[test]
fn validate_json_lists_diagnostics() {
    let out = mcpfleet()
        .args(["validate", "-o", "json", "-f", "tests/fixtures/invalid/stop-timeout-above.yaml"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "valid": false,
            "services": [],
            "diagnostics": [{
                "file": "tests/fixtures/invalid/stop-timeout-above.yaml",
                "line": 15,
                "code": "E0605",
                "path": "spec.stopTimeout",
                "message": "300s is above the Fargate maximum of 120s"
            }]
        })
    );
    let out = mcpfleet().args(["validate", "-o", "json", "-f", "manifests"]).assert().success().get_output().clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["services"], serde_json::json!(["database", "documents", "everything", "search"]));
}

#[test]
fn missing_paths_are_reported_not_panicked() {
    mcpfleet()
        .args(["validate", "-f", "no/such/dir.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("no/such/dir.yaml: cannot read: "))
        .stderr(predicate::str::contains("error: 1 problem found in the manifests"));
}

#[test]
fn render_ecs_is_stable_and_fits_the_aws_api_shapes() {
    let out = mcpfleet().args(["render", "-f", "manifests/"]).assert().success().get_output().clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("render_ecs", doc);
    let (ok, report) = run_python_script("scripts/check_ecs_shapes.py", &["-"], &out.stdout);
    assert!(ok, "botocore rejected the rendered ECS input:\n{report}");
}

#[test]
fn render_ecs_of_the_controller_fits_the_aws_api_shapes() {
    let out = mcpfleet().args(["render", "-f", "manifests/controller/"]).assert().success().get_output().clone();
    let (ok, report) = run_python_script("scripts/check_ecs_shapes.py", &["-"], &out.stdout);
    assert!(ok, "botocore rejected the controller's rendered ECS input:\n{report}");
}

#[test]
fn render_ecs_shape_check_catches_a_bad_document() {
    // The checker itself must fail on input ECS would refuse, or the tests above prove nothing: a wrong type, an
    // unknown parameter, values outside an enum and a list above its maximum length.
    let tags: Vec<String> = (0..51).map(|i| format!(r#"{{"key": "k{i}", "value": "v"}}"#)).collect();
    let bad = format!(
        r#"{{"services": [{{"name": "x", "cluster": "c",
        "registerTaskDefinition": {{"family": "x", "networkMode": "awsvpcx", "runtimePlatform": {{"cpuArchitecture": "ARM"}},
            "tags": [{}], "containerDefinitions": [{{"name": "x", "image": "i", "stopTimeout": "30"}}]}},
        "createService": {{"serviceName": "x", "cluster": "c", "desiredCount": 1, "launchTypo": "FARGATE"}}}}]}}"#,
        tags.join(", ")
    );
    let (ok, report) = run_python_script("scripts/check_ecs_shapes.py", &["-"], bad.as_bytes());
    assert!(!ok, "{report}");
    for expected in [
        "stopTimeout",
        "launchTypo",
        "networkMode: 'awsvpcx' is not one of bridge, host, awsvpc, none",
        "runtimePlatform.cpuArchitecture: 'ARM' is not one of X86_64, ARM64",
        "tags: length 51 is above the maximum 50",
    ] {
        assert!(report.contains(expected), "{expected:?} not reported:\n{report}");
    }
}

#[test]
fn render_compose_is_stable_and_fits_the_compose_spec() {
    let out =
        mcpfleet().args(["render", "--format", "compose", "-f", "manifests/"]).assert().success().get_output().clone();
    let text = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("render_compose", text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-compose.yml");
    std::fs::write(&path, &text).unwrap();
    let (ok, report) = run_python_script("scripts/check_compose.py", &[path.to_str().unwrap()], b"");
    assert!(ok, "the Compose Specification schema rejected the rendered file:\n{report}");

    // And the checker refuses what Compose would refuse.
    std::fs::write(&path, "services:\n  a:\n    image: x\n    depends_on: { b: { condition: service_happy } }\n")
        .unwrap();
    let (ok, report) = run_python_script("scripts/check_compose.py", &[path.to_str().unwrap()], b"");
    assert!(!ok && report.contains("depends_on"), "{report}");
    std::fs::write(&path, "services:\n  a:\n    image: x\n    restart: sometimes-maybe\n    portz: [1]\n").unwrap();
    let (ok, report) = run_python_script("scripts/check_compose.py", &[path.to_str().unwrap()], b"");
    assert!(!ok, "{report}");
}

/// Writes `text` as a docker-compose.yml and checks it against the Compose Specification schema.
fn assert_fits_compose_spec(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-compose.yml");
    std::fs::write(&path, text).unwrap();
    let (ok, report) = run_python_script("scripts/check_compose.py", &[path.to_str().unwrap()], b"");
    assert!(ok, "the Compose Specification schema rejected the rendered file:\n{report}\n{text}");
}

#[test]
fn render_compose_secrets_are_env_variables_by_default_and_files_on_request() {
    let render = |extra: &[&str]| {
        let mut args = vec!["render", "--format", "compose", "-f", "manifests/"];
        args.extend_from_slice(extra);
        let out = mcpfleet().args(&args).assert().success().get_output().clone();
        String::from_utf8(out.stdout).unwrap()
    };
    // The default is ECS's behaviour: the server reads DB_PASSWORD itself, filled from .env by Compose.
    let env = render(&[]);
    assert_eq!(env, render(&["--secrets", "env"]));
    let doc: serde_yaml::Value = serde_yaml::from_str(&env).unwrap();
    let database = &doc["services"]["database"];
    assert_eq!(database["environment"]["DB_PASSWORD"].as_str(), Some("${DB_PASSWORD:?set DB_PASSWORD in .env}"));
    assert!(database["environment"].get("DB_PASSWORD_FILE").is_none() && database.get("secrets").is_none());
    assert!(doc.get("secrets").is_none(), "{env}");
    assert!(!env.contains("prod/"), "a secret's source reached the compose file:\n{env}");
    assert_fits_compose_spec(&env);

    let files = render(&["--secrets", "files"]);
    let doc: serde_yaml::Value = serde_yaml::from_str(&files).unwrap();
    assert_eq!(
        doc["services"]["database"]["environment"]["DB_PASSWORD_FILE"].as_str(),
        Some("/run/secrets/DB_PASSWORD")
    );
    assert_eq!(doc["secrets"]["DB_PASSWORD"]["file"].as_str(), Some("./secrets/DB_PASSWORD"));
    assert_fits_compose_spec(&files);

    refused_quietly(&["render", "-f", "manifests/", "--secrets", "files"], "--secrets applies to --format compose");
}

#[test]
fn render_compose_ports_stay_put_and_shifts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("manifests").unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let ports = |dir: &std::path::Path| {
        let out = mcpfleet()
            .args(["render", "--format", "compose", "-f", dir.to_str().unwrap()])
            .assert()
            .success()
            .get_output()
            .clone();
        let doc: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
        let ports: Vec<(String, String)> = ["database", "documents", "search"]
            .iter()
            .map(|n| (n.to_string(), doc["services"][*n]["ports"][0].as_str().unwrap().to_string()))
            .collect();
        (ports, String::from_utf8(out.stderr).unwrap())
    };
    let (before, _) = ports(dir.path());
    // A service whose name sorts first, and one that pins the port `search` derives: only `search` moves, and
    // both the file and stderr say why.
    let search = before[2].1.split(':').nth(1).unwrap().to_string();
    let text = std::fs::read_to_string("manifests/search.yaml").unwrap();
    let added = text
        .replace("name: search", "name: aardvark")
        .replace("  port: 3000\n", &format!("  port: 3000\n  local: {{ port: {search} }}\n"));
    assert!(added.contains("local: {"), "manifests/search.yaml changed shape");
    std::fs::write(dir.path().join("aardvark.yaml"), added).unwrap();
    let (after, stderr) = ports(dir.path());
    assert_eq!(before[..2], after[..2], "adding a service moved others' ports");
    let moved = format!("127.0.0.1:{}:3000", search.parse::<u16>().unwrap() + 1);
    assert_eq!(after[2].1, moved);
    assert!(
        stderr.contains(&format!("note: service `search` publishes host port {} because {search} (derived from its name) is taken by `aardvark`", search.parse::<u16>().unwrap() + 1)),
        "{stderr}"
    );
}

#[test]
fn render_compose_with_redis_and_command_health_checks_fits_the_compose_spec() {
    // The redis service, `depends_on: service_healthy` and a `command` health check appear only in this fleet.
    let out = mcpfleet()
        .args(["render", "--format", "compose", "-f", "tests/fixtures/redis-fleet.yaml"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["services"]["redis"]["image"].as_str(), Some("redis:7-alpine"));
    assert_eq!(doc["services"]["sessions"]["depends_on"]["redis"]["condition"].as_str(), Some("service_healthy"));
    assert_eq!(doc["services"]["sessions"]["healthcheck"]["test"][0].as_str(), Some("CMD-SHELL"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-compose.yml");
    std::fs::write(&path, &text).unwrap();
    let (ok, report) = run_python_script("scripts/check_compose.py", &[path.to_str().unwrap()], b"");
    assert!(ok, "the Compose Specification schema rejected the rendered file:\n{report}\n{text}");
    let out =
        mcpfleet().args(["render", "-f", "tests/fixtures/redis-fleet.yaml"]).assert().success().get_output().clone();
    let (ok, report) = run_python_script("scripts/check_ecs_shapes.py", &["-"], &out.stdout);
    assert!(ok, "botocore rejected the rendered ECS input:\n{report}");
}

/// Runs `args`, expecting exit 1, nothing on stdout and `message` on stderr.
fn refused_quietly(args: &[&str], message: &str) {
    mcpfleet().args(args).assert().code(1).stdout("").stderr(predicate::str::contains(message));
}

#[test]
fn render_refuses_an_invalid_fleet_and_prints_nothing() {
    refused_quietly(
        &["render", "-f", "tests/fixtures/invalid/cpu-memory-pair.yaml"],
        "spec.memory: 512 MiB is not a valid Fargate size for cpu 512",
    );
}

#[test]
fn committed_schema_is_current() {
    let out = mcpfleet().arg("schema").assert().success().get_output().clone();
    let committed = std::fs::read_to_string("schemas/mcpfleet.v1alpha1.schema.json").unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "schemas/mcpfleet.v1alpha1.schema.json is stale: run `cargo run -q -- schema > schemas/mcpfleet.v1alpha1.schema.json`"
    );
}

#[test]
fn example_manifests_point_editors_at_the_schema() {
    // The schema line is relative to the manifest, so each directory has its own.
    let mut checked = 0;
    for (dir, line) in [
        ("manifests", "# yaml-language-server: $schema=../schemas/mcpfleet.v1alpha1.schema.json\n"),
        ("manifests/controller", "# yaml-language-server: $schema=../../schemas/mcpfleet.v1alpha1.schema.json\n"),
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.starts_with(line), "{} lacks the schema line {line:?}", path.display());
                let target = path.parent().unwrap().join(line.trim().rsplit_once('=').unwrap().1);
                assert!(target.is_file(), "{} points at {}, which does not exist", path.display(), target.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "only {checked} manifests checked");
}

#[test]
fn manifests_validate_against_the_json_schema_too() {
    // Editors validate with the schema, mcpfleet with its own rules: a valid manifest must satisfy both.
    let (ok, report) = run_python_script(
        "scripts/check_manifest_schema.py",
        &[
            "manifests/fleet.yaml",
            "manifests/documents.yaml",
            "manifests/database.yaml",
            "manifests/search.yaml",
            "manifests/everything.yaml",
            "manifests/controller/mcpfleet.yaml",
            "tests/fixtures/redis-fleet.yaml",
        ],
        b"",
    );
    assert!(ok, "{report}");
}

#[test]
fn manifest_schema_check_catches_a_bad_document() {
    // The schema check must be able to fail, or the test above proves nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata: { name: 'a b' }\nspec:\n  image: x:1\n  cpu: lots\n  memory: 512\n  port: 8080\n  stopTimeout: 2min\n  replica: 2\n",
    )
    .unwrap();
    let (ok, report) = run_python_script("scripts/check_manifest_schema.py", &[path.to_str().unwrap()], b"");
    assert!(!ok, "{report}");
    for field in ["metadata.name", "spec.cpu", "spec.stopTimeout", "replica"] {
        assert!(report.contains(field), "{field} not reported:\n{report}");
    }
}

#[test]
fn help_explains_the_commands() {
    mcpfleet().arg("--help").assert().success().stdout(
        predicate::str::contains("validate")
            .and(predicate::str::contains("render"))
            .and(predicate::str::contains("schema")),
    );
    mcpfleet().args(["render", "--help"]).assert().success().stdout(predicate::str::contains("compose"));
    mcpfleet().arg("bogus").assert().code(1);
}

#[test]
fn concurrency_zero_is_a_usage_error() {
    for cmd in ["apply", "run"] {
        mcpfleet()
            .args(["--backend", "sim", cmd, "-f", "manifests", "--concurrency", "0"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("--concurrency").and(predicate::str::contains("must be at least 1")));
    }
    mcpfleet()
        .args(["apply", "-f", "manifests", "--concurrency", "x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("`x` is not a whole number"));
}

/// A manifest that can only be hostile gets one located line and exit 1, from `validate` and `plan` alike, and
/// never takes the process down (before the bound, the alias bomb aborted out of memory).
#[test]
fn hostile_yaml_gets_one_located_error_not_a_crash() {
    let cases = [
        (
            "tests/fixtures/hostile/alias-bomb.yaml:12: anchors and aliases expand to more than 100000 nodes in this file",
            "tests/fixtures/hostile/alias-bomb.yaml",
            "[E0106]",
        ),
        (
            "tests/fixtures/hostile/deep-nesting.yaml:7: collections nest deeper than 64 levels",
            "tests/fixtures/hostile/deep-nesting.yaml",
            "[E0105]",
        ),
    ];
    let state = tempfile::tempdir().unwrap();
    let sim_state = state.path().join("sim.json");
    for (expected, path, code) in cases {
        for command in [
            &["validate", "-f", path][..],
            &["--backend", "sim", "--sim-state", sim_state.to_str().unwrap(), "plan", "-f", path],
        ] {
            let out = mcpfleet().args(command).assert().code(1).get_output().clone();
            let stderr = String::from_utf8(out.stderr).unwrap();
            let located: Vec<&str> = stderr.lines().filter(|l| l.starts_with(path)).collect();
            assert_eq!(located.len(), 1, "{command:?}:\n{stderr}");
            assert!(located[0].starts_with(expected) && located[0].ends_with(code), "{command:?}:\n{stderr}");
            assert!(stderr.ends_with("error: 1 problem found in the manifests\n"), "{stderr}");
        }
    }
}

/// A file beyond the size bound is refused before it is read whole; the line named is where it crosses the bound.
#[test]
fn a_huge_manifest_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding padding padding padding\n";
    let lines = (9 << 20) / line.len();
    std::fs::write(&path, line.repeat(lines)).unwrap();
    let crossing = (8 << 20) / line.len() + 1;
    let out = mcpfleet().args(["validate", "-f", path.to_str().unwrap()]).assert().code(1).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!("{}:{crossing}: the file is larger than 8 MiB", path.display());
    assert!(stderr.starts_with(&expected), "expected {expected}:\n{stderr}");
    assert!(stderr.lines().next().is_some_and(|l| l.ends_with("[E0104]")), "{stderr}");
}

/// Environment values reach the container exactly as written: YAML would read these as the float 1.1, the octal-
/// looking integer 7, a float that rounds, and a boolean.
#[test]
fn render_passes_env_values_exactly_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.yaml");
    let text = std::fs::read_to_string("tests/fixtures/invalid/stop-timeout-above.yaml")
        .unwrap()
        .replace("stopTimeout: 300s", "env: {VERSION: 1.10, ZIP: 007, BIG: 12345678901234567890, T: True, HEX: 0x1F}");
    std::fs::write(&path, text).unwrap();
    let out = mcpfleet().args(["render", "-f", path.to_str().unwrap()]).assert().success().get_output().clone();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &doc["services"][0]["registerTaskDefinition"]["containerDefinitions"][0]["environment"];
    assert_eq!(
        env,
        &serde_json::json!([
            {"name": "BIG", "value": "12345678901234567890"},
            {"name": "HEX", "value": "0x1F"},
            {"name": "T", "value": "True"},
            {"name": "VERSION", "value": "1.10"},
            {"name": "ZIP", "value": "007"},
        ])
    );
}

/// Resolution errors point at the field that names the missing thing, not at the document's first line.
#[test]
fn plan_names_the_lines_of_an_unresolvable_tag_and_secrets() {
    let state = tempfile::tempdir().unwrap();
    let sim_state = state.path().join("sim.json");
    let sim = ["--backend", "sim", "--sim-state", sim_state.to_str().unwrap()];
    let repo = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/missing-refs";
    mcpfleet().args(sim).args(["sim", "push", &format!("{repo}:v0")]).assert().success();
    let path = "tests/fixtures/unresolvable/missing-refs.yaml";
    let out = mcpfleet().args(sim).args(["plan", "-f", path]).assert().code(1).get_output().clone();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        format!("service `missing-refs` ({path}:8): spec.image: tag `v1` not found in {repo}"),
        format!("service `missing-refs` ({path}:16): spec.secrets.A: secret `prod/a` not found"),
        format!("service `missing-refs` ({path}:19): spec.secrets.B: secret `prod/b` not found"),
    ] {
        assert!(stderr.contains(&expected), "expected {expected}:\n{stderr}");
    }
    let header = "error: 3 problems resolving the fleet's references (1 image, 2 secrets); nothing was changed:\n";
    assert!(stderr.starts_with(header), "{stderr}");
}

#[test]
fn json_output_errors_are_a_json_document_on_stdout() {
    let lab = Lab::new();
    let m = lab.manifests();
    let m = m.to_str().unwrap();
    lab.edit_manifest("documents.yaml", "documents:v1.4.2", "documents:v9.9.9");
    for cmd in ["plan", "apply"] {
        let out = lab.run(&[cmd, "-f", m, "-o", "json"]);
        let (code, doc) = json_output(&[cmd], &out);
        assert_eq!(code, 1);
        let error = doc["error"].as_str().unwrap_or_default();
        assert!(error.contains("tag `v9.9.9` not found"), "{cmd}: {doc}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error: "), "{cmd}: stderr still tells people");
    }

    // Broken manifests: the diagnostics come along, as `validate -o json` lists them.
    lab.edit_manifest("documents.yaml", "cpu: 512", "cpu: 500");
    let (code, doc) = json_output(&["status"], &lab.run(&["status", "-f", m, "-o", "json"]));
    assert_eq!(code, 1);
    assert_eq!(doc["error"], "1 problem found in the manifests");
    assert_eq!(doc["diagnostics"][0]["path"], "spec.cpu", "{doc}");
    assert!(doc["diagnostics"][0]["file"].as_str().unwrap().ends_with("documents.yaml"), "{doc}");

    let (code, doc) =
        json_output(&["history"], &lab.run(&["history", "nosuch", "--cluster", "mcp-prod", "-o", "json"]));
    assert_eq!(code, 1);
    assert_eq!(doc, serde_json::json!({ "error": "service nosuch not found in cluster mcp-prod" }));
}

#[test]
fn status_names_each_missing_service_and_its_cluster() {
    let lab = Lab::new();
    let m = lab.manifests();
    let out = lab.run(&["status", "-f", m.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for name in ["database", "documents", "search"] {
        assert!(stderr.contains(&format!("error: service `{name}` is not running in cluster `mcp-prod`")), "{stderr}");
    }
    assert!(String::from_utf8(out.stdout).unwrap().contains("MISSING"));
}

#[test]
fn status_usage_shows_both_ways_to_name_services() {
    let usage = "Usage: mcpfleet status <--file <PATH>...|--source <s3://BUCKET/KEY>|--cluster <CLUSTER>>";
    mcpfleet().arg("status").assert().code(1).stderr(predicate::str::contains(usage));
    mcpfleet().args(["status", "--help"]).assert().success().stdout(predicate::str::contains("--file <PATH>..."));
    mcpfleet()
        .args(["status", "-f", "manifests", "--cluster", "mcp-prod"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot be used with"));
}

#[tokio::test]
async fn sim_target_group_prints_an_aws_arn_and_the_sim_describes_it() {
    use mcpfleet::backend::TargetType;
    use mcpfleet::backend::sim::Sim;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sim.json");
    let sim = |args: &[&str]| {
        mcpfleet()
            .args(["--backend", "sim", "--sim-state", state.to_str().unwrap(), "sim", "target-group"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = sim(&["mcp-documents", "--health-path", "/ready"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let arn = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let shape = regex::Regex::new(
        r"^arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mcp-documents/[0-9a-f]{16}$",
    )
    .unwrap();
    assert!(shape.is_match(&arn), "{arn}");
    let again = sim(&["mcp-documents", "--health-path", "/ready"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), arn, "the same settings answer the same group");
    let out = sim(&["legacy", "--target-type", "instance", "--no-load-balancer"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let saved = std::fs::read(&state).unwrap();
    let refused = sim(&["mcp-documents", "--health-path", "/health"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("`mcp-documents` exists with other settings"));
    let refused = sim(&["bad_name"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("target group name `bad_name`"));
    let refused = sim(&["x", "--target-type", "lambda"]);
    assert_eq!(refused.status.code(), Some(1), "bad usage");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("possible values: ip, instance"));
    assert_eq!(std::fs::read(&state).unwrap(), saved, "refused commands change nothing");

    let world = Sim::open(&state).unwrap();
    let found = world.backend().target_groups.describe(&[arn.clone(), "legacy".into()]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].target_group.health_check_path.as_deref(), Some("/ready"));
    assert_eq!(found[0].load_balancers.len(), 1);
    assert_eq!(found[1].target_group.target_type, TargetType::Instance);
    assert!(found[1].load_balancers.is_empty());
}

#[test]
fn api_rate_overrides_are_checked_before_anything_runs() {
    let lab = Lab::new();
    let m = lab.manifests();
    let before = std::fs::read(lab.state()).unwrap();
    for (bad, says) in [
        ("DescribeServices", "`DescribeServices`: write OPERATION=BURST/RATE"),
        ("Nope=1/1", "`Nope` is not a metered operation or bucket (one of: AutoscalingRead, AutoscalingWrite"),
        ("PutObject=1/1", "`PutObject` is not a metered operation or bucket"),
        ("DescribeServices=0/5", "the burst `0` must be a whole number from 1 to 1000000"),
        ("DescribeServices=100", "write OPERATION=BURST/RATE"),
        ("BatchGetImage=10/-1", "the rate `-1` must be a number of requests per second above 0"),
        ("ServiceWrite=10/NaN", "the rate `NaN`"),
    ] {
        let out = lab.run(&["--api-rate", bad, "plan", "-f", m.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains("--api-rate") && stderr.contains(says), "{bad}: {stderr}");
        assert_eq!(std::fs::read(lab.state()).unwrap(), before, "{bad}: nothing changed");
    }
    // An operation's bucket or a bucket by name, repeated.
    let out = lab.run(&[
        "--api-rate",
        "DescribeServices=50/10",
        "--api-rate",
        "ServiceWrite=10/2.5",
        "plan",
        "-f",
        m.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

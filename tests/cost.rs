//! `mcpfleet cost` and the plan's cost line on the sim, through the real binary, with the example fleet. Every
//! figure is worked out by hand here: 730 hours a month, vCPU = cpu / 1024 and GB = memory / 1024 priced
//! separately, each service rounded to the cent (half up), totals the sums of those cents.
//!
//! Built-in us-east-1 prices: X86_64 $0.04048 per vCPU-hour and $0.004445 per GB-hour, ARM64 $0.03238 and
//! $0.00356. The example fleet: documents (auto, multi-arch image → ARM64, 0.5 vCPU, 1 GB, 2 replicas), database
//! (x86_64, amd64-only image, 1 vCPU, 2 GB, 2 replicas), search (arm64, 0.25 vCPU, 0.5 GB, 1 replica).

mod common;

use serde_json::{Value, json};

use common::lab::{Lab, service};

fn cost(lab: &Lab, extra: &[&str]) -> (i32, Value) {
    let m = lab.manifests();
    let mut args = vec!["cost", "-f", m.to_str().unwrap(), "-o", "json"];
    args.extend_from_slice(extra);
    lab.json(&args)
}

/// (name, architecture, monthly, arm64Monthly) of each service.
fn lines(doc: &Value) -> Vec<(String, String, Value, Value)> {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap().to_string();
            (text("name"), text("architecture"), s["monthly"].clone(), s["arm64Monthly"].clone())
        })
        .collect()
}

fn line(name: &str, arch: &str, monthly: Value, arm64: Value) -> (String, String, Value, Value) {
    (name.to_string(), arch.to_string(), monthly, arm64)
}

#[test]
fn the_example_fleet_costs_what_the_prices_say() {
    let lab = Lab::new();
    let (code, doc) = cost(&lab, &[]);
    assert_eq!(code, 0, "{doc:#}");
    // documents: 2 × 730 × (0.5 × 0.03238 + 1 × 0.00356) = 1460 × 0.01975 = 28.835 → 28.84.
    // database: 2 × 730 × (1 × 0.04048 + 2 × 0.004445) = 1460 × 0.04937 = 72.0802 → 72.08; its image has no
    //   linux/arm64, so no ARM64 figure.
    // search: 730 × (0.25 × 0.03238 + 0.5 × 0.00356) = 730 × 0.009875 = 7.20875 → 7.21.
    assert_eq!(
        lines(&doc),
        [
            line("database", "X86_64", json!(72.08), Value::Null),
            line("documents", "ARM64", json!(28.84), Value::Null),
            line("search", "ARM64", json!(7.21), Value::Null),
        ]
    );
    let documents = service(&doc, "documents");
    assert_eq!(
        (&documents["cluster"], &documents["replicas"], &documents["vcpu"], &documents["memoryGiB"]),
        (&json!("mcp-prod"), &json!(2), &json!(0.5), &json!(1.0))
    );
    assert_eq!(doc["total"], json!(108.13), "28.84 + 72.08 + 7.21");
    assert_eq!(doc["possibleSaving"], json!(0.0));
    assert_eq!(
        (&doc["currency"], &doc["hoursPerMonth"], &doc["region"]),
        (&json!("USD"), &json!(730), &json!("us-east-1"))
    );
    assert_eq!(doc["prices"], "built-in table (us-east-1, 2026-12-01)");

    let m = lab.manifests();
    let text = lab.ok(&["cost", "-f", m.to_str().unwrap()]);
    assert_eq!(
        text,
        "\
SERVICE    CLUSTER   ARCH    REPLICAS  VCPU  MEMORY  MONTHLY  ON ARM64
database   mcp-prod  X86_64         2     1    2 GB   $72.08         -
documents  mcp-prod  ARM64          2   0.5    1 GB   $28.84         -
search     mcp-prod  ARM64          1  0.25  0.5 GB    $7.21         -
Total: $108.13 a month (USD, 730 hours, us-east-1, built-in table (us-east-1, 2026-12-01)).
"
    );
    // Read-only: nothing was written to the sim.
    assert!(lab.world().services.is_empty());
}

#[test]
fn an_x86_service_whose_image_has_arm64_shows_its_saving_and_an_amd64_only_one_never_does() {
    let lab = Lab::new();
    // documents' image has linux/arm64 and linux/amd64: pinned to x86_64 it could move.
    lab.edit_manifest("documents.yaml", "architecture: auto", "architecture: x86_64");
    // database's image is amd64-only: even `auto` resolves to X86_64, and no move is suggested.
    lab.edit_manifest("database.yaml", "architecture: x86_64", "architecture: auto");
    let (code, doc) = cost(&lab, &[]);
    assert_eq!(code, 0, "{doc:#}");
    // documents on X86_64: 1460 × (0.5 × 0.04048 + 1 × 0.004445) = 1460 × 0.024685 = 36.0401 → 36.04; on ARM64
    // 28.84 (above): a saving of 7.20.
    assert_eq!(
        lines(&doc),
        [
            line("database", "X86_64", json!(72.08), Value::Null),
            line("documents", "X86_64", json!(36.04), json!(28.84)),
            line("search", "ARM64", json!(7.21), Value::Null),
        ]
    );
    assert_eq!(doc["total"], json!(115.33), "72.08 + 36.04 + 7.21");
    assert_eq!(doc["possibleSaving"], json!(7.2));

    let m = lab.manifests();
    let text = lab.ok(&["cost", "-f", m.to_str().unwrap()]);
    assert!(text.contains("documents  mcp-prod  X86_64         2   0.5    1 GB   $36.04    $28.84\n"), "{text}");
    assert!(
        text.ends_with("Moving to ARM64 (architecture: auto or arm64) would save $7.20 a month: documents ($7.20).\n"),
        "{text}"
    );
    assert!(!text.contains("database ("), "an amd64-only image is never suggested: {text}");
}

const EU_WEST_1: &str = r#"{
  "regions": {
    "eu-west-1": {
      "ARM64": { "vcpuHour": 0.03592, "gbHour": 0.00394 },
      "X86_64": { "vcpuHour": "0.0449100000", "gbHour": 0.004934 }
    }
  }
}
"#;

#[test]
fn a_prices_file_prices_another_region() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.json");
    std::fs::write(&file, EU_WEST_1).unwrap();
    let file = file.to_str().unwrap();
    let (code, doc) = cost(&lab, &["--region", "eu-west-1", "--prices", file]);
    assert_eq!(code, 0, "{doc:#}");
    // documents: 1460 × (0.5 × 0.03592 + 1 × 0.00394) = 1460 × 0.0219 = 31.974 → 31.97.
    // database: 1460 × (1 × 0.04491 + 2 × 0.004934) = 1460 × 0.054778 = 79.97588 → 79.98.
    // search: 730 × (0.25 × 0.03592 + 0.5 × 0.00394) = 730 × 0.01095 = 7.9935 → 7.99.
    assert_eq!(
        lines(&doc),
        [
            line("database", "X86_64", json!(79.98), Value::Null),
            line("documents", "ARM64", json!(31.97), Value::Null),
            line("search", "ARM64", json!(7.99), Value::Null),
        ]
    );
    assert_eq!(doc["total"], json!(119.94));
    assert_eq!(doc["region"], "eu-west-1");
    assert_eq!(doc["prices"], format!("prices file {file}"));

    // The file has no us-east-1 (the sim's region without --region): said so, never priced at zero.
    let out = lab.run(&["cost", "-f", lab.manifests().to_str().unwrap(), "--prices", file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: no Fargate price for region us-east-1 in the prices file {file} [E2103]")),
        "{stderr}"
    );
    // Nor does the built-in table know eu-west-1.
    let (code, doc) = cost(&lab, &["--region", "eu-west-1"]);
    assert_eq!(code, 1);
    assert!(
        doc["error"].as_str().unwrap().starts_with("no Fargate price for region eu-west-1 in the built-in table"),
        "{doc:#}"
    );
}

#[test]
fn a_bad_prices_file_is_refused_with_its_line_and_field_before_anything_is_asked() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prices.json");
    std::fs::write(&file, EU_WEST_1.replace("0.004934", "-0.004934")).unwrap();
    let file = file.to_str().unwrap();
    let m = lab.manifests();
    let out = lab.run(&["cost", "-f", m.to_str().unwrap(), "--prices", file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {file}:5: regions.eu-west-1.X86_64.gbHour: -0.004934 is not a price in dollars (negative) [E2102]"
        )),
        "{stderr}"
    );
    let missing = dir.path().join("absent.json");
    let out = lab.run(&["plan", "-f", m.to_str().unwrap(), "--prices", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("error: {}: cannot be read: ", missing.display())), "{stderr}");
    assert!(stderr.contains("[E2101]"), "{stderr}");
    // Hostile: an endless file is refused, not read to the end.
    let out = lab.run(&["cost", "-f", m.to_str().unwrap(), "--prices", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: /dev/zero: is larger than 1048576 bytes [E2101]"), "{stderr}");
}

#[test]
fn live_prices_are_refused_on_the_sim() {
    let lab = Lab::new();
    for cmd in ["cost", "plan"] {
        let m = lab.manifests();
        let out = lab.run(&[cmd, "-f", m.to_str().unwrap(), "--live-prices"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "error: --live-prices reads AWS's Price List API, which the sim backend does not have [E2105]"
            ),
            "{cmd}: {stderr}"
        );
    }
}

/// The plan's `costDelta` lines: (name, from, to, change).
fn deltas(plan: &Value) -> Vec<(String, Value, Value, Value)> {
    plan["costDelta"]["services"]
        .as_array()
        .unwrap_or_else(|| panic!("{plan:#}"))
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["from"].clone(), s["to"].clone(), s["change"].clone()))
        .collect()
}

fn delta(name: &str, from: Value, to: Value, change: Value) -> (String, Value, Value, Value) {
    (name.to_string(), from, to, change)
}

#[test]
fn plan_prices_its_creates_resizes_architecture_changes_and_deletes() {
    let lab = Lab::new();
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    assert_eq!(
        deltas(&plan),
        [
            delta("database", Value::Null, json!(72.08), json!(72.08)),
            delta("documents", Value::Null, json!(28.84), json!(28.84)),
            delta("search", Value::Null, json!(7.21), json!(7.21)),
        ]
    );
    assert_eq!(plan["costDelta"]["monthly"], json!(108.13));
    assert!(lab.plan_text().ends_with(
        "Plan: 3 to create, 0 to update, 0 to delete, 0 unchanged. Monthly cost: +$108.13 (USD, us-east-1, built-in \
         table (us-east-1, 2026-12-01)).\n"
    ));

    assert_eq!(lab.apply(&["--wait"]).0, 0);
    let (code, plan) = lab.plan();
    assert_eq!(code, 0, "{plan:#}");
    assert_eq!(deltas(&plan), [], "a converged fleet changes nothing");
    assert_eq!(plan["costDelta"]["monthly"], json!(0.0));
    assert!(
        lab.plan_text()
            .ends_with("unchanged. Monthly cost: $0.00 (USD, us-east-1, built-in table (us-east-1, 2026-12-01)).\n")
    );

    // A resize: documents to 1 vCPU and 2 GB. An architecture change: search to x86_64 (its image has both).
    lab.edit_manifest("documents.yaml", "cpu: 512\n  memory: 1024", "cpu: 1024\n  memory: 2048");
    lab.edit_manifest("search.yaml", "architecture: arm64", "architecture: x86_64");
    let (code, plan) = lab.plan();
    assert_eq!(code, 2, "{plan:#}");
    // documents: 1460 × (1 × 0.03238 + 2 × 0.00356) = 1460 × 0.0395 = 57.67, from 28.84: +28.83.
    // search on X86_64: 730 × (0.25 × 0.04048 + 0.5 × 0.004445) = 730 × 0.0123425 = 9.010025 → 9.01, from 7.21:
    // +1.80.
    assert_eq!(
        deltas(&plan),
        [
            delta("documents", json!(28.84), json!(57.67), json!(28.83)),
            delta("search", json!(7.21), json!(9.01), json!(1.8)),
        ]
    );
    assert_eq!(plan["costDelta"]["monthly"], json!(30.63));
    assert_eq!(
        plan["apiCalls"]["calls"]["DescribeTaskDefinition"], 2,
        "each running revision is described once, for the plan's changes and its cost: {plan:#}"
    );
    assert!(lab.plan_text().contains("2 to update, 0 to delete, 1 unchanged. Monthly cost: +$30.63 (USD, us-east-1,"));

    // A delete (with --prune): search leaves the manifests, and with it its 7.21 a month (it still runs ARM64).
    std::fs::remove_file(lab.manifests().join("search.yaml")).unwrap();
    let (code, plan) = lab.plan_with(&["--prune"]);
    assert_eq!(code, 2, "{plan:#}");
    assert_eq!(
        deltas(&plan),
        [
            delta("documents", json!(28.84), json!(57.67), json!(28.83)),
            delta("search", json!(7.21), Value::Null, json!(-7.21))
        ]
    );
    assert_eq!(plan["costDelta"]["monthly"], json!(21.62));
    assert_eq!(
        plan["apiCalls"]["calls"]["DescribeTaskDefinition"], 2,
        "documents' for the plan, search's for its cost"
    );
    // Without --prune search is kept: it costs what it did.
    let (_, plan) = lab.plan();
    assert_eq!(deltas(&plan), [delta("documents", json!(28.84), json!(57.67), json!(28.83))]);
}

#[test]
fn plan_says_when_its_cost_change_is_unknown() {
    let lab = Lab::new();
    let (code, plan) = lab.plan_with(&["--region", "eu-west-1"]);
    assert_eq!(code, 2, "a plan is made whatever the prices: {plan:#}");
    assert_eq!(plan["costDelta"], Value::Null);
    assert!(
        plan["costUnknown"]
            .as_str()
            .unwrap()
            .starts_with("no Fargate price for region eu-west-1 in the built-in table"),
        "{plan:#}"
    );
    let m = lab.manifests();
    let text = lab.ok(&["plan", "-f", m.to_str().unwrap(), "--region", "eu-west-1"]);
    assert!(
        text.contains(
            "0 unchanged. Monthly cost change unknown: no Fargate price for region eu-west-1 in the built-in"
        ),
        "{text}"
    );
    assert!(!text.contains("$0.00"), "{text}");
}

#[test]
fn committed_prices_schema_is_current() {
    let out = common::mcpfleet().args(["schema", "--prices"]).output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string("schemas/prices.schema.json").unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "schemas/prices.schema.json is stale: run `cargo run -q -- schema --prices > schemas/prices.schema.json`"
    );
    // The README's example file is valid against the reader.
    let schema: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(schema["required"], json!(["regions"]));
}

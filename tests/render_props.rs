//! Property tests: any manifest that validates renders without panicking, and what it renders stays inside the
//! limits ECS enforces; any manifest that does not validate is refused with located diagnostics.

use mcpfleet::render::{Resolved, compose, ecs};
use mcpfleet::spec::load_str;
use proptest::prelude::*;

const CPUS: [u32; 8] = [256, 512, 1024, 2048, 4096, 8192, 16384, 300];

/// Fargate's cpu → memory table as the design states it, written out independently of the validator's own table
/// so a mistake there cannot hide itself here.
fn fargate_pair_allowed(cpu: u32, memory: u32) -> bool {
    let stepped = |min: u32, max: u32, step: u32| (min..=max).contains(&memory) && (memory - min).is_multiple_of(step);
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => stepped(1024, 4096, 1024),
        1024 => stepped(2048, 8192, 1024),
        2048 => stepped(4096, 16384, 1024),
        4096 => stepped(8192, 30720, 1024),
        8192 => stepped(16384, 61440, 4096),
        16384 => stepped(32768, 122880, 8192),
        _ => false,
    }
}

/// Mostly plausible values, sometimes anything a u32 can hold: overflow and range bugs live at the extremes.
fn wide(plausible: std::ops::Range<u32>) -> impl Strategy<Value = u32> {
    prop_oneof![
        16 => plausible,
        1 => any::<u32>(),
        1 => prop::sample::select(vec![u32::MAX, u32::MAX / 100, 5000, 5001]),
    ]
}

/// An optional FleetDefaults document whose rollout and stop timeout also wander out of range.
fn defaults() -> impl Strategy<Value = Option<String>> {
    prop::option::of((prop::option::of(wide(90..210)), prop::option::of(wide(0..110)), prop::option::of(1u32..130)))
        .prop_map(|d| {
            d.map(|(max, min, stop)| {
                let mut text =
                    "apiVersion: mcpfleet.io/v1alpha1\nkind: FleetDefaults\nspec:\n  cluster: c\n".to_string();
                if let Some(stop) = stop {
                    text.push_str(&format!("  stopTimeout: {stop}s\n"));
                }
                let mut rollout = Vec::new();
                if let Some(max) = max {
                    rollout.push(format!("maxPercent: {max}"));
                }
                if let Some(min) = min {
                    rollout.push(format!("minHealthyPercent: {min}"));
                }
                if !rollout.is_empty() {
                    text.push_str(&format!("  rollout: {{ {} }}\n", rollout.join(", ")));
                }
                text + "---\n"
            })
        })
}

/// A health check: an HTTP `path` probe or an ECS `command`, with ranges beyond ECS's on every field.
fn health_check() -> impl Strategy<Value = Option<String>> {
    // The malformed commands are listed once among good ones so most generated checks can still be valid.
    let command = prop::sample::select(vec![
        r#"["CMD", "/bin/check"]"#,
        r#"["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"]"#,
        r#"["CMD", "python", "-c", "print(1)"]"#,
        r#"["CMD-SHELL", "true"]"#,
        r#"["CMD"]"#,
        r#"["sh", "-c", "true"]"#,
    ]);
    prop::option::of((
        prop::option::of(command),
        (1u32..330, 1u32..70, 0u32..12, 0u32..330),
        prop::option::weighted(0.25, prop::sample::select(vec!["python", "curl", "wget"])),
    ))
    .prop_map(|h| {
        h.map(|(command, (interval, timeout, retries, start), probe)| {
            let target = match command {
                Some(cmd) => format!("command: {cmd}"),
                None => "path: /health".to_string(),
            };
            let probe = probe.map(|p| format!(", probe: {p}")).unwrap_or_default();
            format!(
                "  healthCheck: {{ {target}{probe}, interval: {interval}s, timeout: {timeout}s, retries: {retries}, startPeriod: {start}s }}\n"
            )
        })
    })
}

/// Labels: mostly good AWS tags, sometimes a reserved prefix or a character tags cannot hold.
fn labels() -> impl Strategy<Value = std::collections::BTreeMap<String, String>> {
    let key = prop_oneof![12 => "[a-z][a-z0-9._/-]{0,20}", 1 => "(aws:|mcpfleet.io/)[a-z]{1,5}"];
    let value = prop_oneof![12 => "[a-zA-Z0-9 ._-]{0,24}", 1 => "[a-z|]{1,5}"];
    prop::collection::btree_map(key, value, 0..4)
}

/// A manifest whose values wander across and beyond the valid ranges.
fn manifest() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z][a-zA-Z0-9_-]{0,12}",
        (0usize..8, 0u32..260),
        health_check(),
        (1u32..130, wide(0..12), wide(90..210), wide(0..110)),
        prop::collection::btree_map("[A-Z][A-Z_]{0,8}", "[a-z0-9 ./:-]{0,16}", 0..4),
        prop::collection::btree_map("[A-Z][A-Z_]{0,8}", "[a-z/]{1,12}", 0..3),
        prop::sample::select(vec!["auto", "arm64", "x86_64"]),
        defaults(),
        labels(),
    )
        .prop_map(|(name, (cpu_i, mem_k), hc, (stop, replicas, max, min), env, secrets, arch, defaults, labels)| {
            let cpu = CPUS[cpu_i];
            // Memory walks the cpu's Fargate range and a few steps past it, so both outcomes are common.
            let memory = match cpu {
                256 => [512, 1024, 2048, 4096][(mem_k % 4) as usize],
                300 => 1024,
                _ => {
                    let (min, max, step) = match cpu {
                        512 => (1024, 4096, 1024),
                        1024 => (2048, 8192, 1024),
                        2048 => (4096, 16384, 1024),
                        4096 => (8192, 30720, 1024),
                        8192 => (16384, 61440, 4096),
                        _ => (32768, 122880, 8192),
                    };
                    min + step * (mem_k % ((max - min) / step + 3))
                }
            };
            let mut text = defaults.unwrap_or_default();
            text.push_str(&format!(
                "apiVersion: mcpfleet.io/v1alpha1\nkind: McpService\nmetadata:\n  name: '{name}'\n"
            ));
            if !labels.is_empty() {
                text.push_str("  labels:\n");
                for (k, v) in &labels {
                    text.push_str(&format!("    '{k}': '{v}'\n"));
                }
            }
            text.push_str(&format!(
                "spec:\n  cluster: c\n  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/mcp/x:v1\n  architecture: {arch}\n  cpu: {cpu}\n  memory: {memory}\n  port: 8080\n  replicas: {replicas}\n  stopTimeout: {stop}s\n  executionRoleArn: arn:aws:iam::123456789012:role/exec\n  network: {{ subnets: [subnet-0abc1234] }}\n  logging: {{ group: /mcp }}\n  rollout: {{ maxPercent: {max}, minHealthyPercent: {min} }}\n"
            ));
            if let Some(hc) = hc {
                text.push_str(&hc);
            }
            if !env.is_empty() {
                text.push_str("  env:\n");
                for (k, v) in &env {
                    text.push_str(&format!("    {k}: '{v}'\n"));
                }
            }
            if !secrets.is_empty() {
                text.push_str("  secrets:\n");
                for (k, v) in &secrets {
                    text.push_str(&format!("    {k}: '{v}'\n"));
                }
            }
            text
        })
}

#[test]
fn valid_specs_render_inside_ecs_limits() {
    let valid = std::cell::Cell::new(0u32);
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig { cases: 1024, ..ProptestConfig::default() });
    runner
        .run(&manifest(), |text| {
            if check(&text)? {
                valid.set(valid.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The property means little unless a good share of the generated manifests are valid.
    assert!(valid.get() >= 100, "only {} of 1024 generated manifests were valid", valid.get());
}

/// Checks one manifest; returns whether it was valid.
fn check(text: &str) -> Result<bool, TestCaseError> {
    {
        match load_str("p.yaml", text) {
            Err(diags) => {
                prop_assert!(!diags.0.is_empty());
                for d in &diags.0 {
                    prop_assert_eq!(&d.file, "p.yaml");
                    prop_assert!(d.line >= 1, "{}", d);
                    prop_assert!(!d.message.is_empty());
                }
            }
            Ok(fleet) => {
                for svc in &fleet.services {
                    let out = ecs::render(svc, &Resolved::unresolved(svc));
                    let td = &out.register_task_definition;
                    let c = &td.container_definitions[0];
                    let cpu: u32 = td.cpu.parse().unwrap();
                    let memory: u32 = td.memory.parse().unwrap();
                    prop_assert!(fargate_pair_allowed(cpu, memory), "{cpu}/{memory}");
                    prop_assert!((2..=120).contains(&c.stop_timeout));
                    prop_assert!(!td.family.is_empty() && td.family.len() <= 255);
                    prop_assert!(td.family.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
                    if let Some(h) = &c.health_check {
                        prop_assert!((5..=300).contains(&h.interval));
                        prop_assert!((2..=60).contains(&h.timeout));
                        prop_assert!(h.timeout < h.interval);
                        prop_assert!((1..=10).contains(&h.retries));
                        prop_assert!(h.start_period <= 300);
                        prop_assert!(h.command[0] == "CMD" || h.command[0] == "CMD-SHELL");
                    }
                    for tag in &td.tags {
                        prop_assert!(!tag.key.is_empty() && tag.key.len() <= 128 && tag.value.len() <= 256);
                        prop_assert!(!tag.key.to_ascii_lowercase().starts_with("aws:"), "{}", tag.key);
                    }
                    prop_assert!(td.tags.len() <= 50);
                    let s = &out.create_service;
                    let dc = &s.deployment_configuration;
                    prop_assert!(s.desired_count <= 5000);
                    prop_assert!((100..=200).contains(&dc.maximum_percent) && dc.minimum_healthy_percent <= 100);
                    if s.desired_count > 0 {
                        let max_tasks = u64::from(s.desired_count) * u64::from(dc.maximum_percent) / 100;
                        let min_tasks =
                            (u64::from(s.desired_count) * u64::from(dc.minimum_healthy_percent)).div_ceil(100);
                        prop_assert!(max_tasks > min_tasks, "a rollout could never start a task");
                    }
                    prop_assert!(c.secrets.iter().all(|sv| !sv.value_from.is_empty()));
                    prop_assert!(c.environment.iter().all(|kv| !kv.name.is_empty()));
                }
                let yaml = compose::render(&fleet, compose::SecretsMode::Env).unwrap().text;
                let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
                prop_assert!(parsed.get("services").is_some());
                return Ok(true);
            }
        }
    }
    Ok(false)
}

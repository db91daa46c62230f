//! The arithmetic with figures worked out by hand (730 hours; vCPU = cpu / 1024, GB = memory / 1024), and the
//! price tables' readers.

use super::*;
use crate::spec::{Code, Diagnostic};

fn rate(s: &str) -> HourlyRate {
    HourlyRate::parse(s).unwrap()
}

fn us_east_1() -> RegionRates {
    *PriceTable::builtin().region("us-east-1").unwrap()
}

fn tasks(cpu: u32, memory: u32, architecture: CpuArch, replicas: u32) -> Tasks {
    Tasks { cpu, memory, architecture, replicas }
}

#[test]
fn rates_are_exact_decimals() {
    assert_eq!(rate("0.04048"), HourlyRate(404_800_000));
    let builtin = us_east_1();
    assert_eq!(
        (builtin.x86_64.vcpu_hour, builtin.x86_64.gb_hour, builtin.arm64.vcpu_hour, builtin.arm64.gb_hour),
        (rate("0.04048"), rate("0.004445"), rate("0.03238"), rate("0.00356")),
        "the built-in table is the issue's us-east-1 prices"
    );
    assert_eq!(rate("0.0404800000"), rate("0.04048"), "the Price List's ten decimals");
    assert_eq!(rate("0.004445"), HourlyRate(44_450_000));
    assert_eq!(rate("1"), HourlyRate(10_000_000_000));
    assert_eq!(rate("0.0000000001"), HourlyRate(1));
    assert_eq!(rate("0.004445").to_string(), "0.004445");
    assert_eq!(rate("2").to_string(), "2.0");
    for bad in ["", "-0.1", "1e-3", ".5", "0.", "0.00000000001", "abc", "0,04", "1000000"] {
        assert!(HourlyRate::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn monthly_figures_of_the_example_fleet() {
    let r = us_east_1();
    // documents: 2 × 730 h × (0.5 vCPU × $0.03238 + 1 GB × $0.00356) = 1460 × $0.01975 = $28.835 → $28.84.
    assert_eq!(tasks(512, 1024, CpuArch::Arm64, 2).monthly(r.of(CpuArch::Arm64)), Cents(2884));
    // The same on X86_64: 1460 × (0.5 × $0.04048 + 1 × $0.004445) = 1460 × $0.024685 = $36.0401 → $36.04.
    assert_eq!(tasks(512, 1024, CpuArch::X86_64, 2).monthly(r.of(CpuArch::X86_64)), Cents(3604));
    // database: 2 × 730 × (1 × $0.04048 + 2 × $0.004445) = 1460 × $0.04937 = $72.0802 → $72.08.
    assert_eq!(tasks(1024, 2048, CpuArch::X86_64, 2).monthly(r.of(CpuArch::X86_64)), Cents(7208));
    // search: 1 × 730 × (0.25 × $0.03238 + 0.5 × $0.00356) = 730 × $0.009875 = $7.20875 → $7.21.
    assert_eq!(tasks(256, 512, CpuArch::Arm64, 1).monthly(r.of(CpuArch::Arm64)), Cents(721));
    // 16 vCPU, 120 GB, 5000 tasks: 3,650,000 × (16 × $0.04048 + 120 × $0.004445) = 3,650,000 × $1.18108.
    assert_eq!(tasks(16384, 122880, CpuArch::X86_64, 5000).monthly(r.of(CpuArch::X86_64)), Cents(431_094_200));
    assert_eq!(tasks(256, 512, CpuArch::Arm64, 0).monthly(r.of(CpuArch::Arm64)), Cents(0));
}

#[test]
fn amounts_print_as_people_read_them() {
    assert_eq!(Cents(10813).to_string(), "$108.13");
    assert_eq!(Cents(5).to_string(), "$0.05");
    assert_eq!(Cents(-720).to_string(), "-$7.20");
    assert_eq!(Cents(123_456_789).to_string(), "$1,234,567.89");
    assert_eq!(Cents(720).signed(), "+$7.20");
    assert_eq!(Cents(-720).signed(), "-$7.20");
    assert_eq!(Cents(0).signed(), "$0.00");
    assert_eq!(serde_json::to_string(&Cents(2884)).unwrap(), "28.84");
    assert_eq!(serde_json::to_string(&Cents(-720)).unwrap(), "-7.2");
}

#[test]
fn task_definition_sizes_in_both_forms() {
    let t = |cpu, mem| Tasks::from_task_definition(cpu, mem, CpuArch::X86_64, 1).map(|t| (t.cpu, t.memory));
    assert_eq!(t("512", "1024"), Some((512, 1024)));
    assert_eq!(t("0.25 vCPU", "0.5 GB"), Some((256, 512)));
    assert_eq!(t("1 vcpu", "2 gb"), Some((1024, 2048)));
    assert_eq!(t("0.3 vCPU", "1 GB"), None, "0.3 × 1024 is not whole");
    assert_eq!(t("", "1024"), None);
    assert_eq!(t("half", "1024"), None);
}

fn priced(name: &str, t: Tasks, arm64_image: bool) -> Priced {
    Priced { name: name.into(), cluster: "mcp-prod".into(), tasks: t, arm64_image }
}

#[test]
fn only_x86_services_with_an_arm64_image_show_a_saving() {
    let fleet = [
        // documents pinned to x86_64 although its image has linux/arm64.
        priced("documents", tasks(512, 1024, CpuArch::X86_64, 2), true),
        // database: amd64-only image.
        priced("database", tasks(1024, 2048, CpuArch::X86_64, 2), false),
        priced("search", tasks(256, 512, CpuArch::Arm64, 1), true),
    ];
    let cost = fleet_cost("us-east-1", &PriceSource::BuiltIn, &us_east_1(), &fleet);
    let line = |name: &str| cost.services.iter().find(|s| s.name == name).unwrap();
    assert_eq!((line("documents").monthly, line("documents").arm64_monthly), (Cents(3604), Some(Cents(2884))));
    assert_eq!(line("documents").saving(), Some(Cents(720)));
    assert_eq!((line("database").monthly, line("database").arm64_monthly), (Cents(7208), None));
    assert_eq!((line("search").monthly, line("search").arm64_monthly), (Cents(721), None), "already on ARM64");
    assert_eq!(cost.total, Cents(3604 + 7208 + 721));
    assert_eq!(cost.possible_saving, Cents(720));
    let json = serde_json::to_value(&cost).unwrap();
    assert_eq!(json["hoursPerMonth"], 730);
    assert_eq!(json["currency"], "USD");
    assert_eq!(json["total"], 115.33);
    assert_eq!(json["possibleSaving"], 7.2);
    assert_eq!(json["services"][0]["vcpu"], 0.5);
    assert_eq!(json["services"][0]["memoryGiB"], 1.0);
    assert_eq!(json["services"][0]["arm64Monthly"], 28.84);
    assert_eq!(json["services"][1]["arm64Monthly"], serde_json::Value::Null, "{json:#}");
}

#[test]
fn the_cost_change_of_a_resize_an_architecture_change_a_create_and_a_delete() {
    let t = tasks;
    let changes = [
        // Resize: database from 1 vCPU / 2 GB to 2 vCPU / 4 GB, 2 replicas: $72.08 → $144.16.
        Change {
            name: "database".into(),
            cluster: "c".into(),
            from: Some(t(1024, 2048, CpuArch::X86_64, 2)),
            to: Some(t(2048, 4096, CpuArch::X86_64, 2)),
        },
        // X86_64 → ARM64: documents, $36.04 → $28.84.
        Change {
            name: "documents".into(),
            cluster: "c".into(),
            from: Some(t(512, 1024, CpuArch::X86_64, 2)),
            to: Some(t(512, 1024, CpuArch::Arm64, 2)),
        },
        Change { name: "new".into(), cluster: "c".into(), from: None, to: Some(t(256, 512, CpuArch::Arm64, 1)) },
        Change { name: "old".into(), cluster: "c".into(), from: Some(t(256, 512, CpuArch::Arm64, 1)), to: None },
        // An update that does not change what runs (a new image): no line.
        Change {
            name: "same".into(),
            cluster: "c".into(),
            from: Some(t(256, 512, CpuArch::Arm64, 1)),
            to: Some(t(256, 512, CpuArch::Arm64, 1)),
        },
    ];
    let delta = cost_delta("us-east-1", &PriceSource::BuiltIn, &us_east_1(), &changes);
    let lines: Vec<(&str, Option<Cents>, Option<Cents>, Cents)> =
        delta.services.iter().map(|d| (d.name.as_str(), d.from, d.to, d.change)).collect();
    assert_eq!(
        lines,
        [
            ("database", Some(Cents(7208)), Some(Cents(14416)), Cents(7208)),
            ("documents", Some(Cents(3604)), Some(Cents(2884)), Cents(-720)),
            ("new", None, Some(Cents(721)), Cents(721)),
            ("old", Some(Cents(721)), None, Cents(-721)),
        ]
    );
    assert_eq!(delta.monthly, Cents(7208 - 720));
}

#[test]
fn a_region_without_prices_is_an_error_not_zero() {
    let err = PriceTable::builtin().region("eu-west-1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no Fargate price for region eu-west-1 in the built-in table (us-east-1, 2026-12-01) [E2103]; give one with \
         --prices FILE or --live-prices"
    );
}

const FILE: &str = r#"{
  "regions": {
    "eu-west-1": {
      "ARM64": { "vcpuHour": 0.03592, "gbHour": "0.0039400000" },
      "X86_64": { "vcpuHour": 0.04491, "gbHour": 0.004934 }
    }
  }
}"#;

#[test]
fn a_prices_file_for_another_region() {
    let table = PriceTable::from_file("prices.json", FILE).unwrap();
    assert_eq!(table.source.to_string(), "prices file prices.json");
    let r = table.region("eu-west-1").unwrap();
    assert_eq!(r.arm64, ArchRates { vcpu_hour: rate("0.03592"), gb_hour: rate("0.00394") });
    assert_eq!(r.x86_64, ArchRates { vcpu_hour: rate("0.04491"), gb_hour: rate("0.004934") });
    assert!(matches!(table.region("us-east-1"), Err(PriceError::NoPrice { .. })));
}

fn file_error(text: &str) -> Diagnostic {
    match PriceTable::from_file("p.json", text) {
        Err(PriceError::File(d)) => d,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bad_prices_file_names_its_line_and_field() {
    let d = file_error(&FILE.replace("0.04491", "-0.04491"));
    assert_eq!(
        (d.file.as_str(), d.line, d.code, d.path.as_str()),
        ("p.json", 5, Code::PricesFile, "regions.eu-west-1.X86_64.vcpuHour")
    );
    assert!(d.message.contains("-0.04491 is not a price in dollars"), "{}", d.message);

    let d = file_error(&FILE.replace("0.0039400000", "0.00394000001"));
    assert_eq!((d.line, d.path.as_str()), (4, "regions.eu-west-1.ARM64.gbHour"));
    assert!(d.message.contains("at most 10 decimal places"), "{}", d.message);

    let d = file_error(&FILE.replace("\"ARM64\": { \"vcpuHour\": 0.03592, ", "\"ARM64\": { "));
    assert_eq!(d.path, "regions.eu-west-1.ARM64");
    assert!(d.message.contains("missing field `vcpuHour`"), "{}", d.message);

    let d = file_error(&FILE.replace("\"X86_64\"", "\"x86\""));
    assert_eq!(d.path, "regions.eu-west-1.x86");
    assert!(d.message.contains("unknown field `x86`"), "{}", d.message);

    let d = file_error(&FILE.replace("eu-west-1", "Ireland"));
    assert_eq!((d.line, d.path.as_str()), (3, "regions.Ireland"));
    assert!(d.message.contains("`Ireland` is not an AWS region code"), "{}", d.message);

    let d = file_error("{\"regions\": {}}");
    assert_eq!((d.line, d.path.as_str(), d.message.as_str()), (0, "regions", "lists no region"));

    let d = file_error("{\"regions\": ");
    assert_eq!((d.line, d.code), (1, Code::PricesFile));
    assert_eq!(d.to_string(), "p.json:1: regions: EOF while parsing a value");
}

fn product(sku: &str, usagetype: &str, region: &str, usd: &str) -> String {
    crate::testkit::price_list_product(sku, usagetype, region, "US East (N. Virginia)", usd)
}

#[test]
fn a_price_list_answer_gives_the_four_linux_prices() {
    let items = [
        product("PT22UKNZNU9D3XSN", "USE1-Fargate-GB-Hours", "us-east-1", "0.0044450000"),
        product("3JPC5EER47BUUFC6", "USE1-Fargate-vCPU-Hours:perCPU", "us-east-1", "0.0404800000"),
        product("A1", "USE1-Fargate-ARM-vCPU-Hours:perCPU", "us-east-1", "0.0323800000"),
        product("A2", "USE1-Fargate-ARM-GB-Hours", "us-east-1", "0.0035600000"),
        // Left aside: Spot, Windows, storage, another region's product.
        product("S1", "USE1-SpotUsage:Fargate-vCPU-Hours:perCPU", "us-east-1", "0.0127000000"),
        product("W1", "USE1-Fargate-Windows-vCPU-Hours:perCPU", "us-east-1", "0.0465520000"),
        product("E1", "USE1-Fargate-EphemeralStorage-GB-Hours", "us-east-1", "0.0001110000"),
        product("X1", "EUW1-Fargate-vCPU-Hours:perCPU", "eu-west-1", "0.0449100000"),
    ];
    let table = PriceTable::from_price_list("us-east-1", &items).unwrap();
    assert_eq!(table.source, PriceSource::Live);
    assert_eq!(table.region("us-east-1").unwrap(), PriceTable::builtin().region("us-east-1").unwrap());

    // us-east-1's older products carry no region prefix.
    let bare: Vec<String> = items.iter().map(|i| i.replace("USE1-", "")).collect();
    assert!(PriceTable::from_price_list("us-east-1", &bare).is_ok());

    let err = PriceTable::from_price_list("us-east-1", &items[..3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the AWS Price List has no price for Fargate-ARM-GB-Hours for Fargate in region us-east-1 [E2104]"
    );
    let mut twice = items.to_vec();
    twice.push(product("A3", "USE1-Fargate-ARM-GB-Hours", "us-east-1", "0.0040000000"));
    let err = PriceTable::from_price_list("us-east-1", &twice).unwrap_err();
    assert!(err.to_string().contains("two different prices for Fargate-ARM-GB-Hours"), "{err}");
    let err = PriceTable::from_price_list("us-east-1", &["not json".to_string()]).unwrap_err();
    assert!(err.to_string().contains("an unreadable product (item 0"), "{err}");
}

#[test]
fn the_prices_file_schema_names_both_architectures() {
    let schema = prices::file_schema();
    let text = schema.to_string();
    for word in ["regions", "ARM64", "X86_64", "vcpuHour", "gbHour"] {
        assert!(text.contains(word), "{word}: {text}");
    }
}

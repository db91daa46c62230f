//! Fargate price tables: the built-in one (us-east-1), a `--prices` file, and an AWS Price List answer
//! (`pricing:GetProducts`, service code AmazonECS), each read into the same [`PriceTable`].
//!
//! Pure: the caller reads the file or asks AWS; this module only reads text. A file's problems are diagnostics
//! with the file, line and JSON path ([`Code::PricesFile`]); a region the table does not know is
//! [`PriceError::NoPrice`], never a zero.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use super::HourlyRate;
use crate::render::CpuArch;
use crate::spec::{Code, Diagnostic};

/// The day the built-in table's prices were recorded (README's `### cost` says so too).
pub const BUILTIN_DATE: &str = "2026-12-01";

/// The region of the built-in table.
pub const BUILTIN_REGION: &str = "us-east-1";

/// What prices could not be found or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// The table has no price for the region the fleet runs in.
    #[error(
        "no Fargate price for region {region} in the {prices} [E2103]; give one with --prices FILE or --live-prices"
    )]
    NoPrice { region: String, prices: PriceSource },
    /// A `--prices` file that cannot be used.
    #[error("{}", .0.coded())]
    File(Diagnostic),
    /// The Price List answer lacks a price it should have, or holds two for the same thing.
    #[error("the AWS Price List has {problem} for Fargate in region {region} [E2104]")]
    PriceList { region: String, problem: String },
}

/// Where a table came from, for the output's `prices` and for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    BuiltIn,
    /// A `--prices` file, as named on the command line.
    File(String),
    /// The AWS Price List API, read during this run.
    Live,
}

impl fmt::Display for PriceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceSource::BuiltIn => write!(f, "built-in table ({BUILTIN_REGION}, {BUILTIN_DATE})"),
            PriceSource::File(path) => write!(f, "prices file {path}"),
            PriceSource::Live => f.write_str("AWS Price List API"),
        }
    }
}

/// Per-hour prices of one architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchRates {
    pub vcpu_hour: HourlyRate,
    pub gb_hour: HourlyRate,
}

/// A region's prices, both architectures (a saving needs both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionRates {
    pub arm64: ArchRates,
    pub x86_64: ArchRates,
}

impl RegionRates {
    pub fn of(&self, arch: CpuArch) -> &ArchRates {
        match arch {
            CpuArch::Arm64 => &self.arm64,
            CpuArch::X86_64 => &self.x86_64,
        }
    }
}

/// Prices by region, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub source: PriceSource,
    regions: BTreeMap<String, RegionRates>,
}

impl PriceTable {
    /// The built-in table: us-east-1 On-Demand Linux prices (X86_64 $0.04048 per vCPU-hour and $0.004445 per
    /// GB-hour; ARM64 $0.03238 and $0.00356).
    pub fn builtin() -> PriceTable {
        // In tenths of a nano-dollar (`HourlyRate`'s unit): 0.04048 = 404,800,000.
        let rates = RegionRates {
            x86_64: ArchRates { vcpu_hour: HourlyRate(404_800_000), gb_hour: HourlyRate(44_450_000) },
            arm64: ArchRates { vcpu_hour: HourlyRate(323_800_000), gb_hour: HourlyRate(35_600_000) },
        };
        PriceTable { source: PriceSource::BuiltIn, regions: [(BUILTIN_REGION.to_string(), rates)].into() }
    }

    /// The region's prices, or [`PriceError::NoPrice`].
    pub fn region(&self, region: &str) -> Result<&RegionRates, PriceError> {
        self.regions
            .get(region)
            .ok_or_else(|| PriceError::NoPrice { region: region.to_string(), prices: self.source.clone() })
    }

    /// Reads a `--prices` file's text (`file` as the user named it, for the diagnostics).
    pub fn from_file(file: &str, text: &str) -> Result<PriceTable, PriceError> {
        let fail = |line: usize, path: String, message: String| {
            PriceError::File(Diagnostic { file: file.to_string(), line, code: Code::PricesFile, path, message })
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let doc: PricesFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let path = if path == "." { String::new() } else { path };
            // serde_json's message ends with its own " at line L column C": the line is the diagnostic's.
            let message = inner.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            fail(inner.line(), path, message)
        })?;
        if doc.regions.is_empty() {
            return Err(fail(0, "regions".into(), "lists no region".into()));
        }
        let regions = doc
            .regions
            .into_iter()
            .map(|(region, r)| {
                let arch = |a: FileRates| ArchRates { vcpu_hour: a.vcpu_hour.0, gb_hour: a.gb_hour.0 };
                (region.0, RegionRates { arm64: arch(r.arm64), x86_64: arch(r.x86_64) })
            })
            .collect();
        Ok(PriceTable { source: PriceSource::File(file.to_string()), regions })
    }

    /// Reads a `GetProducts` answer for AmazonECS in `region`: each item of `PriceList` is one product as a JSON
    /// document. The four On-Demand Linux Fargate usage types (`…-Fargate-vCPU-Hours:perCPU`,
    /// `…-Fargate-GB-Hours` and their `ARM` variants) must each be there once; Spot, Windows and storage usage
    /// types are left aside.
    pub fn from_price_list(region: &str, items: &[String]) -> Result<PriceTable, PriceError> {
        let problem = |problem: String| PriceError::PriceList { region: region.to_string(), problem };
        let mut found: BTreeMap<Usage, HourlyRate> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let product: Product =
                serde_json::from_str(item).map_err(|e| problem(format!("an unreadable product (item {i}: {e})")))?;
            let attributes = &product.product.attributes;
            if attributes.region_code.as_deref().is_some_and(|r| r != region) {
                continue;
            }
            let Some(usage) = attributes.usagetype.as_deref().and_then(Usage::of) else { continue };
            let mut prices = product.terms.on_demand.values().flat_map(|t| t.price_dimensions.values());
            let (Some(dimension), None) = (prices.next(), prices.next()) else {
                return Err(problem(format!("not exactly one On-Demand price for {}", usage.name())));
            };
            let Some(usd) = dimension.price_per_unit.get("USD") else {
                return Err(problem(format!("no USD price for {}", usage.name())));
            };
            let rate = HourlyRate::parse(usd).map_err(|e| problem(format!("{} priced {e}", usage.name())))?;
            if found.insert(usage, rate).is_some_and(|before| before != rate) {
                return Err(problem(format!("two different prices for {}", usage.name())));
            }
        }
        let get = |u: Usage| found.get(&u).copied().ok_or_else(|| problem(format!("no price for {}", u.name())));
        let rates = RegionRates {
            x86_64: ArchRates { vcpu_hour: get(Usage::X86Vcpu)?, gb_hour: get(Usage::X86Gb)? },
            arm64: ArchRates { vcpu_hour: get(Usage::ArmVcpu)?, gb_hour: get(Usage::ArmGb)? },
        };
        Ok(PriceTable { source: PriceSource::Live, regions: [(region.to_string(), rates)].into() })
    }
}

/// The Fargate usage types that price a Linux task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Usage {
    X86Vcpu,
    X86Gb,
    ArmVcpu,
    ArmGb,
}

impl Usage {
    /// The usage type without its region prefix (`USE1-`; us-east-1's older products have none).
    fn name(self) -> &'static str {
        match self {
            Usage::X86Vcpu => "Fargate-vCPU-Hours:perCPU",
            Usage::X86Gb => "Fargate-GB-Hours",
            Usage::ArmVcpu => "Fargate-ARM-vCPU-Hours:perCPU",
            Usage::ArmGb => "Fargate-ARM-GB-Hours",
        }
    }

    /// The usage of a product's `usagetype`: the name, after at most a region prefix of letters and digits
    /// (`SpotUsage:` or any other qualifier makes it another product).
    fn of(usagetype: &str) -> Option<Usage> {
        let rest = match usagetype.split_once('-') {
            Some((prefix, rest)) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                if prefix == "Fargate" { usagetype } else { rest }
            }
            _ => usagetype,
        };
        [Usage::X86Vcpu, Usage::X86Gb, Usage::ArmVcpu, Usage::ArmGb].into_iter().find(|u| u.name() == rest)
    }
}

/// The parts of a Price List product that price it.
#[derive(Deserialize)]
struct Product {
    product: ProductInfo,
    terms: Terms,
}

#[derive(Deserialize)]
struct ProductInfo {
    attributes: Attributes,
}

#[derive(Deserialize)]
struct Attributes {
    usagetype: Option<String>,
    #[serde(rename = "regionCode")]
    region_code: Option<String>,
}

#[derive(Deserialize)]
struct Terms {
    #[serde(rename = "OnDemand", default)]
    on_demand: BTreeMap<String, Term>,
}

#[derive(Deserialize)]
struct Term {
    #[serde(rename = "priceDimensions")]
    price_dimensions: BTreeMap<String, Dimension>,
}

#[derive(Deserialize)]
struct Dimension {
    #[serde(rename = "pricePerUnit")]
    price_per_unit: BTreeMap<String, String>,
}

/// A `--prices` file: US dollars per hour, by region and architecture.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mcpfleet Fargate prices", description = "US dollars per hour, by region and architecture")]
pub struct PricesFile {
    /// An editor's schema reference; ignored.
    #[serde(rename = "$schema", default)]
    #[allow(dead_code)]
    schema: Option<String>,
    /// Region code (`eu-west-1`) → its prices.
    regions: BTreeMap<RegionCode, FileRegion>,
}

/// An AWS region code: lower-case letters, digits and `-`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RegionCode(String);

impl JsonSchema for RegionCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RegionCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)+$" })
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RegionCode, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.split('-').count() >= 2
            && s.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if ok {
            Ok(RegionCode(s))
        } else {
            Err(serde::de::Error::custom(format!("`{s}` is not an AWS region code such as eu-west-1")))
        }
    }
}

/// One region: both architectures.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FileRegion {
    #[serde(rename = "ARM64")]
    arm64: FileRates,
    #[serde(rename = "X86_64")]
    x86_64: FileRates,
}

/// The two prices of an architecture.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileRates {
    /// US dollars per vCPU per hour.
    vcpu_hour: FileRate,
    /// US dollars per GB of memory per hour.
    gb_hour: FileRate,
}

/// A price: a JSON number (`0.04048`) or a decimal string (`"0.0404800000"`, as the Price List writes it).
#[derive(Debug)]
struct FileRate(HourlyRate);

impl JsonSchema for FileRate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Price".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "US dollars per hour, at most 10 decimal places",
            "oneOf": [
                { "type": "number", "minimum": 0 },
                { "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$" }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for FileRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<FileRate, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileRate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price in dollars per hour (a number such as 0.04048, or the same as a string)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<FileRate, E> {
                HourlyRate::parse(s).map(FileRate).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<FileRate, E> {
                // Rust prints the shortest decimal that reads back as the same double: the digits the file has.
                if v < 0.0 {
                    Err(E::custom(format!("{v} is not a price in dollars (negative)")))
                } else if v.is_finite() {
                    self.visit_str(&format!("{v}"))
                } else {
                    Err(E::custom(format!("{v} is not a price in dollars")))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileRate, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileRate, E> {
                Err(E::custom(format!("{v} is not a price in dollars (negative)")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The JSON Schema of a `--prices` file.
pub fn file_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PricesFile)).unwrap_or_default()
}

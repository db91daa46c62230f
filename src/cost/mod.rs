//! What a fleet costs on Fargate: the arithmetic of `mcpfleet cost` and of the plan's cost line, and the price
//! tables it reads (the built-in one, a `--prices` file, an AWS Price List answer: see [`prices`]).
//!
//! Pure: no I/O, no async. Fargate bills vCPU and memory separately, per hour; a month is 730 hours. Prices are
//! exact decimals (tenths of a nano-dollar, [`HourlyRate`]) and each service's monthly figure is computed exactly
//! and rounded once, to the cent, half up. Totals, savings and the plan's change are sums of those rounded
//! cents, so a table always adds up. No floating point touches a figure; `f64` appears only where JSON needs a
//! number.

pub mod prices;

use std::fmt;

use serde::Serialize;

use crate::render::CpuArch;

pub use prices::{ArchRates, PriceError, PriceSource, PriceTable, RegionRates};

/// Hours in a month, as AWS's own calculator counts them.
pub const HOURS_PER_MONTH: i128 = 730;

/// The currency of every figure (the Price List's `USD`).
pub const CURRENCY: &str = "USD";

/// Units of a rate per dollar: a rate is exact to ten decimal places (the Price List writes ten).
const RATE_SCALE: i128 = 10_000_000_000;

/// A price in US dollars per hour (per vCPU or per GB), exact to ten decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HourlyRate(i64);

impl HourlyRate {
    /// Parses a decimal such as `0.04048` or `0.0404800000`: no sign, no exponent, at most ten decimals.
    pub fn parse(s: &str) -> Result<HourlyRate, String> {
        let bad = || format!("`{s}` is not a price in dollars (a decimal such as 0.04048, at most 10 decimal places)");
        let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || (s.contains('.') && fraction.is_empty()) {
            return Err(bad());
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > 10 {
            return Err(bad());
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let padded = format!("{fraction:0<10}");
        let fraction: i64 = padded.parse().map_err(|_| bad())?;
        // A dollar an hour per vCPU is already 25 times Fargate's price; a million is surely a typo.
        if whole >= 1_000_000 {
            return Err(format!("`{s}` dollars an hour is not a Fargate price"));
        }
        Ok(HourlyRate(whole * RATE_SCALE as i64 + fraction))
    }
}

impl fmt::Display for HourlyRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = RATE_SCALE as i64;
        let fraction = format!("{:010}", self.0 % scale);
        let fraction = fraction.trim_end_matches('0');
        write!(f, "{}.{}", self.0 / scale, if fraction.is_empty() { "0" } else { fraction })
    }
}

/// An amount of US dollars in whole cents (negative for a saving or a decrease).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(pub i64);

impl Cents {
    /// Dollars as a JSON number: cents / 100 prints with at most two decimals (`28.84`).
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 100.0
    }

    /// `+$7.20`, `-$7.20`, `$0.00`: a change, signed.
    pub fn signed(self) -> String {
        match self.0.signum() {
            1 => format!("+{self}"),
            _ => self.to_string(),
        }
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, other: Cents) -> Cents {
        Cents(self.0 + other.0)
    }
}

impl std::ops::Sub for Cents {
    type Output = Cents;
    fn sub(self, other: Cents) -> Cents {
        Cents(self.0 - other.0)
    }
}

impl std::iter::Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        Cents(iter.map(|c| c.0).sum())
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let dollars = abs / 100;
        // Thousands separated, as a person reads an amount.
        let digits = dollars.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "{sign}${grouped}.{:02}", abs % 100)
    }
}

impl Serialize for Cents {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

/// What a service runs: its tasks' size, their architecture and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasks {
    /// Fargate CPU units (1024 = one vCPU).
    pub cpu: u32,
    /// MiB (1024 = one GB as Fargate bills it).
    pub memory: u32,
    pub architecture: CpuArch,
    pub replicas: u32,
}

impl Tasks {
    /// Reads a task definition's `cpu` and `memory` as ECS echoes them: whole units and MiB (`"512"`), or the
    /// `"0.5 vCPU"` / `"1 GB"` forms RegisterTaskDefinition also accepts. None for anything else.
    pub fn from_task_definition(cpu: &str, memory: &str, architecture: CpuArch, replicas: u32) -> Option<Tasks> {
        let units = |s: &str, suffix: &str| -> Option<u32> {
            let s = s.trim();
            if let Ok(n) = s.parse::<u32>() {
                return Some(n);
            }
            let n = s.strip_suffix(suffix).or_else(|| s.strip_suffix(&suffix.to_lowercase()))?.trim();
            let rate = HourlyRate::parse(n).ok()?;
            // `0.25 vCPU` = 256 units: the decimal times 1024, which must come out whole.
            let scaled = rate.0 as i128 * 1024;
            (scaled % RATE_SCALE == 0).then(|| u32::try_from(scaled / RATE_SCALE).ok()).flatten()
        };
        Some(Tasks { cpu: units(cpu, "vCPU")?, memory: units(memory, "GB")?, architecture, replicas })
    }

    /// vCPUs per task (`cpu / 1024`), for display.
    pub fn vcpu(&self) -> f64 {
        f64::from(self.cpu) / 1024.0
    }

    /// GB per task (`memory / 1024`), for display.
    pub fn memory_gib(&self) -> f64 {
        f64::from(self.memory) / 1024.0
    }

    /// The same tasks on another architecture.
    pub fn on(self, architecture: CpuArch) -> Tasks {
        Tasks { architecture, ..self }
    }

    /// The month's bill at `rates` (the rates of this architecture), rounded to the cent, half up.
    pub fn monthly(&self, rates: &ArchRates) -> Cents {
        // (cpu × vCPU-rate + memory × GB-rate) / 1024 per task-hour, in rate units; the / 1024 is kept in the
        // denominator so nothing is rounded before the cent.
        let per_hour = i128::from(self.cpu) * i128::from(rates.vcpu_hour.0)
            + i128::from(self.memory) * i128::from(rates.gb_hour.0);
        let numerator = per_hour * HOURS_PER_MONTH * i128::from(self.replicas);
        let per_cent = 1024 * RATE_SCALE / 100;
        let cents = (numerator + per_cent / 2) / per_cent;
        Cents(i64::try_from(cents).unwrap_or(i64::MAX))
    }
}

/// A service to price: where it is, what it runs, and whether its image also has `linux/arm64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub name: String,
    pub cluster: String,
    pub tasks: Tasks,
    /// The image index lists `linux/arm64` (false when the platforms are unknown: nothing is suggested then).
    pub arm64_image: bool,
}

/// One service's line of `mcpfleet cost`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCost {
    pub name: String,
    pub cluster: String,
    pub architecture: CpuArch,
    pub replicas: u32,
    pub vcpu: f64,
    #[serde(rename = "memoryGiB")]
    pub memory_gib: f64,
    pub monthly: Cents,
    /// What the service would cost on ARM64: only for an X86_64 service whose image has `linux/arm64`.
    pub arm64_monthly: Option<Cents>,
}

impl ServiceCost {
    /// What moving to ARM64 saves a month, when it is possible.
    pub fn saving(&self) -> Option<Cents> {
        self.arm64_monthly.map(|arm| self.monthly - arm)
    }
}

/// `mcpfleet cost`: every service, the fleet's total and what moving the ARM64-capable X86_64 services saves.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetCost {
    pub currency: &'static str,
    pub hours_per_month: i128,
    pub region: String,
    /// Where the prices came from (the built-in table, a file, the Price List API).
    pub prices: String,
    pub services: Vec<ServiceCost>,
    pub total: Cents,
    pub possible_saving: Cents,
}

/// Prices every service at `rates` (the region's).
pub fn fleet_cost(region: &str, source: &PriceSource, rates: &RegionRates, services: &[Priced]) -> FleetCost {
    let services: Vec<ServiceCost> = services
        .iter()
        .map(|s| {
            let t = s.tasks;
            let arm64_monthly = (t.architecture == CpuArch::X86_64 && s.arm64_image)
                .then(|| t.on(CpuArch::Arm64).monthly(rates.of(CpuArch::Arm64)));
            ServiceCost {
                name: s.name.clone(),
                cluster: s.cluster.clone(),
                architecture: t.architecture,
                replicas: t.replicas,
                vcpu: t.vcpu(),
                memory_gib: t.memory_gib(),
                monthly: t.monthly(rates.of(t.architecture)),
                arm64_monthly,
            }
        })
        .collect();
    FleetCost {
        currency: CURRENCY,
        hours_per_month: HOURS_PER_MONTH,
        region: region.to_string(),
        prices: source.to_string(),
        total: services.iter().map(|s| s.monthly).sum(),
        possible_saving: services.iter().filter_map(ServiceCost::saving).sum(),
        services,
    }
}

/// One service whose monthly cost a plan changes: before (None when it is created) and after (None when it is
/// deleted).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDelta {
    pub name: String,
    pub cluster: String,
    pub from: Option<Cents>,
    pub to: Option<Cents>,
    pub change: Cents,
}

/// The monthly cost change of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostDelta {
    pub currency: &'static str,
    pub region: String,
    pub prices: String,
    /// The whole plan's change per month (negative when it saves).
    pub monthly: Cents,
    /// The services whose cost changes, in the plan's order.
    pub services: Vec<ServiceDelta>,
}

/// A service of a plan, priced before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub cluster: String,
    pub from: Option<Tasks>,
    pub to: Option<Tasks>,
}

/// The cost change of `changes` at `rates`; services whose cost stays the same are left out.
pub fn cost_delta(region: &str, source: &PriceSource, rates: &RegionRates, changes: &[Change]) -> CostDelta {
    let price = |t: &Option<Tasks>| t.map(|t| t.monthly(rates.of(t.architecture)));
    let services: Vec<ServiceDelta> = changes
        .iter()
        .map(|c| {
            let (from, to) = (price(&c.from), price(&c.to));
            let change = to.unwrap_or_default() - from.unwrap_or_default();
            ServiceDelta { name: c.name.clone(), cluster: c.cluster.clone(), from, to, change }
        })
        .filter(|d| d.change != Cents(0) || d.from.is_none() != d.to.is_none())
        .collect();
    CostDelta {
        currency: CURRENCY,
        region: region.to_string(),
        prices: source.to_string(),
        monthly: services.iter().map(|s| s.change).sum(),
        services,
    }
}

#[cfg(test)]
mod tests;

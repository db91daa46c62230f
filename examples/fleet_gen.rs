//! Prints a synthetic fleet manifest: `fleet_gen N [REPOS] [SECRETS]` (used by scripts/bench.sh).

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let n = args.first().copied().unwrap_or(1000);
    print!(
        "{}",
        mcpfleet::testkit::fleet_yaml(n, args.get(1).copied().unwrap_or(5), args.get(2).copied().unwrap_or(3))
    );
}

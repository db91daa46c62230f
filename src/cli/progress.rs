//! Progress of an apply on stderr: on a terminal, one line per service redrawn in place (registering →
//! updating → rolling out n/m → done); otherwise plain `service: step` log lines.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

pub struct Reporter {
    tty: bool,
    lines: Mutex<(BTreeMap<String, String>, usize)>,
}

impl Reporter {
    pub fn new() -> Reporter {
        Reporter { tty: std::io::stderr().is_terminal(), lines: Mutex::new((BTreeMap::new(), 0)) }
    }

    pub fn report(&self, service: &str, step: &str) {
        if !self.tty {
            eprintln!("{service}: {step}");
            return;
        }
        // A panic while drawing leaves at worst a line count off by some; keep drawing rather than panic again.
        let mut guard = self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (steps, drawn) = &mut *guard;
        steps.insert(service.to_string(), step.to_string());
        let mut out = String::new();
        if *drawn > 0 {
            out.push_str(&format!("\x1b[{drawn}A"));
        }
        for (s, w) in steps.iter() {
            out.push_str(&format!("\x1b[2K{s:<24} {w}\n"));
        }
        *drawn = steps.len();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}

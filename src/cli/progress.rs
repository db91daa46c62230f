//! Progress of `apply`, `rollback --wait` and the quickstart on stderr. On a terminal (indicatif): one summary
//! bar (services done / total, rolling out, failed, elapsed) and a line for each service that is active right now,
//! never more lines than the terminal has rows (less a margin), so every redraw stays on the screen and nothing
//! piles up in the scrollback; a service's line goes when it is done, a failure is printed once, for good, above
//! the bars, and each service's final line likewise when the command finishes. Anywhere else (CI, pipes, files)
//! plain `service: step` lines, one per step.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Rows of the terminal left free of bars: the shell's prompt line, and the line the cursor rests on.
const MARGIN_ROWS: usize = 2;
/// A service line's step is cut to this many characters less than the terminal's width (the name's column).
const NAME_WIDTH: usize = 24;

/// Where progress goes: plain lines, or the bars.
pub struct Reporter {
    bars: Option<Bars>,
}

/// The terminal display: the summary bar, one bar per shown service line, and what is known of each service.
struct Bars {
    multi: MultiProgress,
    summary: ProgressBar,
    /// At most this many service lines are shown (the terminal's rows less the summary and the margin).
    max_lines: usize,
    colour: bool,
    state: Mutex<Services>,
}

#[derive(Default)]
struct Services {
    /// The services being worked on, by name: their latest step and when it came (a sequence number).
    active: BTreeMap<String, (String, u64)>,
    /// Counts the steps, for `active`'s sequence numbers.
    steps: u64,
    /// Services whose work is over (a completed rollout, a failure or their final line).
    done: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// Services whose final line is already above the bars: it is printed once.
    printed: BTreeSet<String>,
    /// Every service seen, for the total.
    seen: BTreeSet<String>,
    /// The service lines, each showing one active service. A line keeps its service while it is active; the
    /// others wait out of sight, and take the line of the service quiet the longest when they report. Lines never
    /// move, so a redraw never shows one half-updated list.
    lines: Vec<(ProgressBar, String)>,
}

/// What a step says about the service's work, in the words `reconcile` reports it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// Still working.
    Working,
    /// Its rollout is watched.
    RollingOut,
    /// Its rollout completed: nothing left to wait for unless the MCP gate verifies it next.
    Completed,
    /// A failure: printed above the bars at once.
    Failed,
}

impl StepKind {
    fn of(step: &str) -> StepKind {
        if step.starts_with("failed") || step.starts_with("rollout failed") {
            StepKind::Failed
        } else if step == "rollout completed" {
            StepKind::Completed
        } else if step.starts_with("rolling out") || step.starts_with("rolling back") {
            StepKind::RollingOut
        } else {
            StepKind::Working
        }
    }
}

impl Reporter {
    /// Bars when stderr is a terminal and the output is for people (`plain` false: not `-o json`), plain lines
    /// otherwise. `total` is how many services the command works on (it grows when more report).
    pub fn new(total: usize, plain: bool) -> Reporter {
        let term = console::Term::stderr();
        if plain || !std::io::stderr().is_terminal() {
            return Reporter { bars: None };
        }
        let rows = term.size_checked().map_or(24, |(rows, _)| usize::from(rows));
        let colour = super::table::colour_allowed();
        console::set_colors_enabled_stderr(colour);
        Reporter { bars: Some(Bars::new(ProgressDrawTarget::stderr(), rows, total, colour)) }
    }

    /// How many services the command works on, once it knows (the summary's total).
    pub fn expect(&self, total: usize) {
        if let Some(bars) = &self.bars {
            let mut s = bars.lock();
            bars.summary.set_length(total as u64);
            bars.redraw(&mut s);
        }
    }

    /// A service's current step.
    pub fn report(&self, service: &str, step: &str) {
        match &self.bars {
            None => eprintln!("{service}: {step}"),
            Some(bars) => bars.report(service, step),
        }
    }

    /// A service's final line (`done: created`), printed once; `failed` paints it red.
    pub fn finish(&self, service: &str, line: &str, failed: bool) {
        match &self.bars {
            None => eprintln!("{service}: {line}"),
            Some(bars) => bars.finish(service, line, failed),
        }
    }

    /// Clears the bars (the final lines stay), before the command prints its result.
    pub fn close(&self) {
        if let Some(bars) = &self.bars {
            bars.close();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.close();
    }
}

impl Bars {
    fn new(target: ProgressDrawTarget, rows: usize, total: usize, colour: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(target);
        let summary = multi.add(ProgressBar::new(total as u64));
        let template = if colour {
            "{spinner:.cyan} {pos}/{len} services done  {wide_msg}  {elapsed:.dim}"
        } else {
            "{spinner} {pos}/{len} services done  {wide_msg}  {elapsed}"
        };
        summary.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
        summary.enable_steady_tick(Duration::from_millis(120));
        let max_lines = rows.saturating_sub(MARGIN_ROWS + 1).max(1);
        let bars = Bars { multi, summary, max_lines, colour, state: Mutex::new(Services::default()) };
        bars.redraw(&mut Services::default());
        bars
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Services> {
        // A panic while drawing leaves at worst a stale line; keep drawing rather than panic again.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, service: &str, step: &str) {
        let mut s = self.lock();
        s.seen.insert(service.to_string());
        match StepKind::of(step) {
            StepKind::Failed => {
                s.failed.insert(service.to_string());
                self.leave(&mut s, service);
                self.print_once(&mut s, service, step, true);
            }
            StepKind::Completed => self.leave(&mut s, service),
            StepKind::Working | StepKind::RollingOut => {
                // Work after a completed rollout (the MCP gate, a rollback): active again.
                s.done.remove(service);
                s.steps += 1;
                let seq = s.steps;
                s.active.insert(service.to_string(), (step.to_string(), seq));
                self.show(&mut s, service);
            }
        }
        self.redraw(&mut s);
    }

    /// Shows an active service's step: on its line, on a new one while there is room, else on the line of the
    /// service that reported the longest ago.
    fn show(&self, s: &mut Services, service: &str) {
        let Some((step, _)) = s.active.get(service) else { return };
        let message = format!("{service:<NAME_WIDTH$} {step}");
        if let Some((bar, _)) = s.lines.iter().find(|(_, shown)| shown == service) {
            bar.set_message(message);
            return;
        }
        if s.lines.len() < self.max_lines {
            let bar = self.multi.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(message);
            s.lines.push((bar, service.to_string()));
            return;
        }
        let quiet = |name: &String| s.active.get(name).map_or(0, |(_, seq)| *seq);
        let oldest = s.lines.iter().enumerate().min_by_key(|(_, (_, name))| quiet(name)).map(|(i, _)| i);
        if let Some(i) = oldest {
            s.lines[i].1 = service.to_string();
            s.lines[i].0.set_message(message);
        }
    }

    /// A service's work is over: its line goes to the service waiting out of sight that reported last, or away.
    fn leave(&self, s: &mut Services, service: &str) {
        s.done.insert(service.to_string());
        s.active.remove(service);
        let Some(i) = s.lines.iter().position(|(_, shown)| shown == service) else { return };
        let hidden = s.active.iter().filter(|(name, _)| !s.lines.iter().any(|(_, shown)| shown == *name));
        match hidden.max_by_key(|(_, (_, seq))| *seq).map(|(name, _)| name.clone()) {
            Some(next) => {
                s.lines[i].1 = next.clone();
                let step = s.active.get(&next).map(|(step, _)| step.as_str()).unwrap_or_default();
                s.lines[i].0.set_message(format!("{next:<NAME_WIDTH$} {step}"));
            }
            None => {
                let (bar, _) = s.lines.remove(i);
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
    }

    fn finish(&self, service: &str, line: &str, failed: bool) {
        let mut s = self.lock();
        s.seen.insert(service.to_string());
        if failed {
            s.failed.insert(service.to_string());
        }
        self.leave(&mut s, service);
        self.print_once(&mut s, service, line, failed);
        self.redraw(&mut s);
    }

    /// Prints a service's final line above the bars, unless one was printed already.
    fn print_once(&self, s: &mut Services, service: &str, line: &str, failed: bool) {
        if !s.printed.insert(service.to_string()) {
            return;
        }
        let text = format!("{service}: {line}");
        let text = if failed { console::style(text).for_stderr().red().to_string() } else { text };
        // Not `MultiProgress::println`: it pads the line to the terminal's width and leaves the next character to
        // wrap onto the following line, so terminals record every such line as wrapped into the next (joined when
        // copied, run together when the window is resized). Here the bars step aside for a line that ends in a
        // newline of its own.
        self.multi.suspend(|| eprintln!("{text}"));
    }

    /// Brings the summary up to date: done of total, rolling out, failed, and the active services out of sight.
    fn redraw(&self, s: &mut Services) {
        let rolling = s.active.values().filter(|(step, _)| StepKind::of(step) == StepKind::RollingOut).count();
        let total = s.seen.len().max(self.summary.length().unwrap_or(0) as usize);
        self.summary.set_length(total as u64);
        self.summary.set_position(s.done.len() as u64);
        let mut msg = format!("{rolling} rolling out, {} failed", s.failed.len());
        let hidden = s.active.len().saturating_sub(s.lines.len());
        if hidden > 0 {
            msg.push_str(&format!(", {hidden} more in progress"));
        }
        if self.colour && !s.failed.is_empty() {
            msg = console::style(msg).for_stderr().red().to_string();
        }
        self.summary.set_message(msg);
    }

    fn close(&self) {
        let mut s = self.lock();
        for (bar, _) in s.lines.drain(..) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.summary.finish_and_clear();
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_told_apart() {
        assert_eq!(StepKind::of("failed: tag `v9` not found"), StepKind::Failed);
        assert_eq!(StepKind::of("rollout failed: tasks stopped: OOM"), StepKind::Failed);
        assert_eq!(StepKind::of("rollout failed; rolling back to search:1"), StepKind::Failed);
        assert_eq!(StepKind::of("rollout completed"), StepKind::Completed);
        assert_eq!(StepKind::of("rolling out 1/2"), StepKind::RollingOut);
        assert_eq!(StepKind::of("registering task definition"), StepKind::Working);
    }

    #[test]
    fn lines_never_outnumber_the_rows() {
        let bars = Bars::new(ProgressDrawTarget::hidden(), 10, 60, false);
        for i in 0..60 {
            bars.report(&format!("svc-{i:02}"), "registering task definition");
        }
        let shown = |bars: &Bars| -> Vec<String> { bars.lock().lines.iter().map(|(l, _)| l.message()).collect() };
        let line = |name: &str, step: &str| format!("{name:<NAME_WIDTH$} {step}");
        {
            let s = bars.lock();
            assert_eq!((s.active.len(), s.lines.len()), (60, 7), "10 rows: 7 service lines, the summary, 2 free");
        }
        // Each newcomer took the line of the service quiet the longest, in place: lines never move.
        assert_eq!(shown(&bars)[0], line("svc-56", "registering task definition"));
        assert_eq!(shown(&bars)[3], line("svc-59", "registering task definition"));
        assert_eq!(shown(&bars)[4], line("svc-53", "registering task definition"));
        bars.report("svc-03", "rolling out 0/2");
        assert_eq!(shown(&bars)[4], line("svc-03", "rolling out 0/2"), "in place of svc-53, quiet the longest");
        assert!(bars.summary.message().starts_with("1 rolling out, 0 failed, 53 more in progress"));
        bars.report("svc-03", "rolling out 1/2");
        assert_eq!(shown(&bars)[4], line("svc-03", "rolling out 1/2"), "its own line");

        bars.report("svc-03", "rollout completed");
        assert_eq!(shown(&bars)[4], line("svc-53", "registering task definition"), "the hidden one that reported last");
        for i in 0..58 {
            bars.report(&format!("svc-{i:02}"), "rollout completed");
        }
        bars.report("svc-58", "rollout failed: tasks stopped: OOM");
        let s = bars.lock();
        assert_eq!((s.active.len(), s.lines.len()), (1, 1), "done services leave");
        assert_eq!((bars.summary.position(), bars.summary.length()), (59, Some(60)));
        assert!(s.printed.contains("svc-58") && s.printed.len() == 1, "only the failure is printed at once");
    }
}

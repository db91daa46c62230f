//! Progress of `apply`, `rollback --wait` and the quickstart on stderr. On a terminal (indicatif): one summary
//! bar (services done / total, rolling out, failed, elapsed) and a line for each service that is active right now,
//! never more lines than the terminal has rows (less a margin), so every redraw stays on the screen and nothing
//! piles up in the scrollback; a service's line goes when it is done, a failure is printed once, for good, above
//! the bars, and each service's final line likewise when the command finishes. Anywhere else (CI, pipes, files)
//! plain `service: step` lines, one per step.

use std::collections::BTreeSet;
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
    /// The services being worked on, by name, with their latest step; in the order they became active.
    active: Vec<(String, String)>,
    /// Services whose work is over (a completed rollout, a failure or their final line).
    done: BTreeSet<String>,
    failed: BTreeSet<String>,
    /// Services whose final line is already above the bars: it is printed once.
    printed: BTreeSet<String>,
    /// Every service seen, for the total.
    seen: BTreeSet<String>,
    /// The bars that show the first `active` services, in order.
    lines: Vec<ProgressBar>,
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
    /// Bars when stderr is a terminal, plain lines otherwise. `total` is how many services the command works on
    /// (it grows when more report).
    pub fn new(total: usize) -> Reporter {
        let term = console::Term::stderr();
        if !std::io::stderr().is_terminal() {
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
                s.done.insert(service.to_string());
                s.active.retain(|(name, _)| name != service);
                self.print_once(&mut s, service, step, true);
            }
            StepKind::Completed => {
                s.done.insert(service.to_string());
                s.active.retain(|(name, _)| name != service);
            }
            StepKind::Working | StepKind::RollingOut => {
                // Work after a completed rollout (the MCP gate, a rollback): active again.
                s.done.remove(service);
                match s.active.iter_mut().find(|(name, _)| name == service) {
                    Some(entry) => entry.1 = step.to_string(),
                    None => s.active.push((service.to_string(), step.to_string())),
                }
            }
        }
        self.redraw(&mut s);
    }

    fn finish(&self, service: &str, line: &str, failed: bool) {
        let mut s = self.lock();
        s.seen.insert(service.to_string());
        s.done.insert(service.to_string());
        if failed {
            s.failed.insert(service.to_string());
        }
        s.active.retain(|(name, _)| name != service);
        self.print_once(&mut s, service, line, failed);
        self.redraw(&mut s);
    }

    /// Prints a service's final line above the bars, unless one was printed already.
    fn print_once(&self, s: &mut Services, service: &str, line: &str, failed: bool) {
        if !s.printed.insert(service.to_string()) {
            return;
        }
        let text = format!("{service}: {line}");
        let text = if failed { console::style(text).red().to_string() } else { text };
        // Not `MultiProgress::println`: it pads the line to the terminal's width and leaves the next character to
        // wrap onto the following line, so terminals record every such line as wrapped into the next (joined when
        // copied, run together when the window is resized). Here the bars step aside for a line that ends in a
        // newline of its own.
        self.multi.suspend(|| eprintln!("{text}"));
    }

    /// Brings the service lines and the summary up to date: as many lines as there are active services, up to
    /// `max_lines` (the summary counts the rest).
    fn redraw(&self, s: &mut Services) {
        let shown = s.active.len().min(self.max_lines);
        while s.lines.len() > shown {
            if let Some(bar) = s.lines.pop() {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        while s.lines.len() < shown {
            let bar = self.multi.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            s.lines.push(bar);
        }
        for ((name, step), bar) in s.active.iter().zip(&s.lines) {
            bar.set_message(format!("{name:<NAME_WIDTH$} {step}"));
        }
        let rolling = s.active.iter().filter(|(_, step)| StepKind::of(step) == StepKind::RollingOut).count();
        let total = s.seen.len().max(self.summary.length().unwrap_or(0) as usize);
        self.summary.set_length(total as u64);
        self.summary.set_position(s.done.len() as u64);
        let mut msg = format!("{rolling} rolling out, {} failed", s.failed.len());
        let hidden = s.active.len() - shown;
        if hidden > 0 {
            msg.push_str(&format!(", {hidden} more active not shown"));
        }
        if self.colour && !s.failed.is_empty() {
            msg = console::style(msg).red().to_string();
        }
        self.summary.set_message(msg);
    }

    fn close(&self) {
        let mut s = self.lock();
        for bar in s.lines.drain(..) {
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
        {
            let s = bars.lock();
            assert_eq!((s.active.len(), s.lines.len()), (60, 7), "10 rows: 7 service lines, the summary, 2 free");
        }
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

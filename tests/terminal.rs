//! What people see at a terminal: the binary run in a pseudo-terminal of fixed size (portable-pty), its output
//! fed to a terminal emulator (vt100, as indicatif tests itself) that keeps the scrollback, so the final screen
//! and everything that scrolled off it are checked as a user would read them. And the plain output of pipes and
//! `NO_COLOR`, as snapshots.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::lab::Lab;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 24;
const COLS: u16 = 80;
/// How long a command in the terminal may take before the test gives up and shows the screen.
const DEADLINE: Duration = Duration::from_secs(180);

/// A 60-service fleet (tests' synthetic fleet) and a sim state holding its images and secrets.
struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fleet.yaml"), mcpfleet::testkit::fleet_yaml(n, 5, 3)).unwrap();
        let world = mcpfleet::testkit::seeded_world(5, 3);
        std::fs::write(dir.path().join("sim.json"), serde_json::to_vec(&world).unwrap()).unwrap();
        Fleet { dir }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<String> {
        let state = self.dir.path().join("sim.json");
        let mut all = vec!["--backend".to_string(), "sim".into(), "--sim-state".into(), path(&state)];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn file(&self) -> String {
        path(&self.dir.path().join("fleet.yaml"))
    }
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// What a run in the terminal left: its exit code, the raw bytes it wrote, and the emulated terminal.
struct Screen {
    code: u32,
    raw: Vec<u8>,
    term: vt100::Parser,
}

/// Runs the binary in an 80×24 pseudo-terminal (stdout and stderr both the terminal) until it exits.
fn in_terminal(args: &[String], env: &[(&str, &str)]) -> Screen {
    let pty = native_pty_system();
    let pair = pty.openpty(PtySize { rows: ROWS, cols: COLS, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut cmd = CommandBuilder::new(PathBuf::from(env!("CARGO_BIN_EXE_mcpfleet")));
    cmd.args(args);
    cmd.cwd(env!("CARGO_MANIFEST_DIR"));
    for var in ["NO_COLOR", "COLUMNS", "LINES", "MCPFLEET_BACKEND", "MCPFLEET_SIM_STATE", "MCPFLEET_LOG", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    // The terminal ends when the child and this copy of its side are gone: the reader then sees end of file.
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                // Linux answers EIO once the other side closed: the end, as for a pipe.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let size = |n: u16| std::num::NonZeroU16::new(n).unwrap();
    let mut term = vt100::Parser::new(size(ROWS), size(COLS), 100_000);
    let mut raw = Vec::new();
    loop {
        match rx.recv_timeout(DEADLINE) {
            Ok(bytes) => {
                term.process(&bytes);
                raw.extend_from_slice(&bytes);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("{args:?} still running after {DEADLINE:?}; the screen:\n{}", term.screen().contents());
            }
        }
    }
    let status = child.wait().unwrap();
    drop(pair.master);
    Screen { code: status.exit_code(), raw, term }
}

impl Screen {
    /// Every line the terminal holds, scrollback first, with whether it wrapped onto the next one.
    fn lines(&mut self) -> Vec<(String, bool)> {
        let screen = self.term.screen_mut();
        screen.set_scrollback(usize::MAX);
        let back = screen.scrollback();
        let mut out = Vec::new();
        for offset in (1..=back).rev() {
            screen.set_scrollback(offset);
            let first = screen.rows(0, COLS).next().unwrap_or_default();
            out.push((first, screen.row_wrapped(0)));
        }
        screen.set_scrollback(0);
        out.extend(self.final_screen());
        out
    }

    /// The rows on the screen when the command ended.
    fn final_screen(&self) -> Vec<(String, bool)> {
        let screen = self.term.screen();
        screen.rows(0, COLS).enumerate().map(|(i, row)| (row, screen.row_wrapped(i as u16))).collect()
    }

    fn shown(&self) -> String {
        self.term.screen().contents()
    }

    /// Whether any cell of the screen row that starts with `prefix` is coloured.
    fn coloured_row(&self, prefix: &str) -> bool {
        let screen = self.term.screen();
        let row = screen.rows(0, COLS).position(|r| r.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}"));
        (0..COLS).any(|c| screen.cell(row as u16, c).is_some_and(|cell| cell.fgcolor() != vt100::Color::Default))
    }
}

#[test]
fn a_60_service_apply_reads_cleanly_in_an_80x24_terminal() {
    let fleet = Fleet::new(60);
    let file = fleet.file();
    let mut run = in_terminal(&fleet.args(&["apply", "-f", &file, "--wait"]), &[]);
    assert_eq!(run.code, 0, "{}", run.shown());

    // The final screen: the end of the result table, every row on one line, and the summary under it.
    let screen = run.final_screen();
    let text: Vec<&str> = screen.iter().map(|(row, _)| row.as_str()).collect();
    assert!(screen.iter().all(|(_, wrapped)| !wrapped), "a row wrapped:\n{}", text.join("\n"));
    let summary = text.iter().position(|r| r.starts_with("Apply: ")).unwrap_or_else(|| panic!("{}", run.shown()));
    assert_eq!(text[summary], "Apply: 60 created, 0 updated, 0 deleted, 0 unchanged, 0 rolled back, 0 failed.");
    assert!(summary >= 20, "the table fills the screen above the summary:\n{}", text.join("\n"));
    for row in &text[summary - 20..summary] {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 7, "SERVICE CLUSTER OUTCOME TASK-DEFINITION MESSAGE: {row:?}");
        assert_eq!((cols[1], cols[2]), ("bench", "created"), "{row:?}");
        assert_eq!(cols[4..].join(" "), "created; rollout completed", "{row:?}");
        assert_eq!(cols[3], format!("{}:1", cols[0]), "{row:?}");
    }
    assert!(text[summary - 1].starts_with("svc-00059 "), "{}", text.join("\n"));
    assert!(run.coloured_row("svc-00059 "), "created is green on a terminal");

    // Everything it wrote, scrollback included: each service's final line once, the table's header once, and no
    // copy of a progress line left behind by a redraw (they are indented; nothing else is).
    let lines = run.lines();
    let wrapped: Vec<&String> = lines.iter().filter(|(_, w)| *w).map(|(l, _)| l).collect();
    assert!(wrapped.is_empty(), "lines wrapped: {wrapped:#?}");
    for i in 0..60 {
        let done = format!("svc-{i:05}: done: created");
        assert_eq!(lines.iter().filter(|(l, _)| *l == done).count(), 1, "{done:?} once");
    }
    let header = lines.iter().filter(|(l, _)| l.starts_with("SERVICE ") && l.contains("OUTCOME")).count();
    assert_eq!(header, 1);
    let leftovers: Vec<&String> = lines.iter().map(|(l, _)| l).filter(|l| l.starts_with("  ")).collect();
    assert!(leftovers.is_empty(), "progress lines left in the scrollback: {leftovers:#?}");
    let bars = lines.iter().filter(|(l, _)| l.contains("services done")).count();
    assert_eq!(bars, 0, "the summary bar is cleared before the table");
    // Nothing but the command's output: its final lines, the table (header and 60 rows), the summary.
    let written = lines.iter().filter(|(l, _)| !l.is_empty()).count();
    assert_eq!(written, 60 + 61 + 1, "{:#?}", lines);

    // status is far wider than 80 columns: its cells are cut, every row still one line; NO_COLOR has no colour.
    let mut status = in_terminal(&fleet.args(&["status", "-f", &file]), &[]);
    assert_eq!(status.code, 0, "{}", status.shown());
    let lines = status.lines();
    assert_eq!(lines.iter().filter(|(l, _)| l.starts_with("svc-")).count(), 60);
    assert!(lines.iter().all(|(l, wrapped)| !wrapped && l.chars().count() <= usize::from(COLS)));
    assert!(lines.iter().any(|(l, _)| l.starts_with("svc-00059  ") && l.contains('…')), "{}", status.shown());
    assert!(status.coloured_row("svc-00059 "), "COMPLETED is green on a terminal");
    let plain = in_terminal(&fleet.args(&["status", "-f", &file]), &[("NO_COLOR", "1")]);
    assert!(!plain.coloured_row("svc-00059 "), "NO_COLOR");
    let raw = String::from_utf8(plain.raw).unwrap();
    assert!(!raw.contains('\x1b'), "no escape sequence at all under NO_COLOR: {raw:?}");
    let raw = raw.replace("\r\n", "\n");
    assert_eq!(raw, status.shown_all_plain(), "the same table, without colour");
    insta::assert_snapshot!("status_no_color_80_columns", raw);
}

impl Screen {
    /// Every line written, as plain text, ending in a newline.
    fn shown_all_plain(&mut self) -> String {
        let lines = self.lines();
        let mut out: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        out.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Piped (not a terminal): the tables in full, no colour, and the progress as plain `service: step` lines.
#[test]
fn piped_output_is_plain_and_whole() {
    let lab = Lab::new();
    let m = lab.manifests();
    let m = m.to_str().unwrap();
    let out = lab.run(&["apply", "-f", m, "--wait"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    insta::assert_snapshot!("apply_piped_stdout", stdout);
    insta::assert_snapshot!("apply_piped_stderr", stderr);
    insta::assert_snapshot!("status_piped", lab.ok(&["status", "-f", m]));
    insta::assert_snapshot!("history_piped", lab.ok(&["history", "documents", "--cluster", "mcp-prod"]));
    insta::assert_snapshot!("plan_piped", lab.ok(&["plan", "-f", m]));
    insta::assert_snapshot!("plan_piped_show_unchanged", lab.ok(&["plan", "-f", m, "--show-unchanged"]));
}

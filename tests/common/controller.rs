//! A controller (`mcpfleet run`) as a process over a sim lab, and how tests read it: its endpoints, its JSON log,
//! its exit. Waits on what a user would see, never on time alone.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::lab::Lab;
use super::metrics;

/// A running controller over a lab; killed on drop.
pub struct Controller {
    pub child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
}

impl Controller {
    pub fn start(lab: &Lab) -> Controller {
        Controller::start_with(lab, &[])
    }

    pub fn start_with(lab: &Lab, extra: &[&str]) -> Controller {
        let manifests = lab.manifests();
        let mut args = vec!["-f", manifests.to_str().unwrap()];
        args.extend_from_slice(extra);
        Controller::spawn(lab, &args, |_| {})
    }

    /// `run ARGS` over the lab's sim state (with `--interval 1s` and `--sim-speed 10` unless given), `env` setting
    /// the process's environment (an AWS endpoint for `--source`).
    pub fn spawn(lab: &Lab, run: &[&str], env: impl FnOnce(&mut Command)) -> Controller {
        let state = lab.state();
        let global = ["--backend", "sim", "--sim-state", state.to_str().unwrap()];
        Controller::spawn_with(&global, run, &lab.manifests().with_file_name(""), env)
    }

    /// `mcpfleet GLOBAL run RUN` (with `--interval 1s` and `--sim-speed 10` unless given, JSON logs in `logs`).
    pub fn spawn_with(
        global: &[&str],
        run: &[&str],
        logs: &std::path::Path,
        env: impl FnOnce(&mut Command),
    ) -> Controller {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = logs.join(format!("controller-{port}.log"));
        let interval: &[&str] = if run.contains(&"--interval") { &[] } else { &["--interval", "1s"] };
        let speed: &[&str] = if run.contains(&"--sim-speed") { &[] } else { &["--sim-speed", "10"] };
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
        cmd.args(global)
            .args(["--log-format", "json"])
            .arg("run")
            .args(run)
            .args(interval)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(speed)
            .env_remove("MCPFLEET_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        env(&mut cmd);
        let child = cmd.spawn().unwrap();
        let c = Controller { child, port, log };
        c.wait_for("the HTTP server", || c.get("/healthz").is_some_and(|(code, _)| code == 200));
        c
    }

    /// `/readyz` as JSON (whatever its status).
    pub fn readyz(&self) -> Value {
        let (_, body) = self.get("/readyz").expect("/readyz answers");
        serde_json::from_str(&body).unwrap()
    }

    /// (status, body) of a GET, or None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        metrics::get(self.port, path)
    }

    /// Waits for `ok`, failing with the controller's log after [`metrics::DEADLINE`].
    pub fn wait_for(&self, what: &str, ok: impl FnMut() -> bool) {
        metrics::wait_until(what, ok, || format!("controller log:\n{}", self.log()));
    }

    /// Waits until the controller has completed `n` more passes (`n = 2`: a whole pass after this call).
    pub fn wait_passes(&self, n: u32) {
        metrics::wait_passes(self.port, n, || format!("controller log:\n{}", self.log()));
    }

    /// Passes completed so far.
    pub fn passes(&self) -> f64 {
        metrics::passes(self.port)
    }

    /// Whether `series` is there and at least `min` (a series not there yet is not an error while waiting).
    pub fn reached(&self, series: &str, min: f64) -> bool {
        metrics::find(&metrics::scrape(self.port), series).is_some_and(|v| v >= min)
    }

    /// `/readyz`'s `nextPassInSeconds`: how long the controller means to stay idle.
    pub fn next_pass_in(&self) -> f64 {
        let (_, body) = self.get("/readyz").expect("/readyz answers");
        let body: Value = serde_json::from_str(&body).unwrap();
        body["nextPassInSeconds"].as_f64().unwrap_or_else(|| panic!("no nextPassInSeconds: {body}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first JSON log line (`--log-format json`) whose message is `message`, waiting for it: what the line
    /// reports may be visible in the sim a moment before the line is written.
    pub fn json_log_line(&self, message: &str) -> Value {
        let find = || {
            self.log()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["fields"]["message"] == message)
        };
        self.wait_for(&format!("a `{message}` log line"), || find().is_some());
        find().unwrap()
    }

    /// The exit code, waiting at most `bound`; panics when it is still running then.
    pub fn wait_exit(&mut self, bound: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), start.elapsed());
            }
            assert!(start.elapsed() < bound, "did not exit within {bound:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        assert!(Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success());
    }

    /// The value of exactly `series`; fails when it is missing.
    pub fn metric(&self, series: &str) -> f64 {
        metrics::value(self.port, series)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

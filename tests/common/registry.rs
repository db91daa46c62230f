//! A lab around the real CNCF distribution registry (Debian's `docker-registry`, which `scripts/test.sh`
//! installs): the test starts it on a free loopback port with its own storage directory and config file, open or
//! behind token auth (the token service of `scripts/registry_lab.py`), waits until `/v2/` answers, pushes images
//! through the distribution API with `registry_lab.py push`, and kills every process it started when dropped.
//! A missing registry binary is a loud failure, never a skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The user and password the token service accepts.
pub const USER: &str = "lab";
pub const PASSWORD: &str = "lab-secret";

/// A registry (and, behind token auth, its token service), with any stub proxies started in front of it.
pub struct RegistryLab {
    /// `127.0.0.1:PORT` of the registry.
    pub host: String,
    /// The token service's `127.0.0.1:PORT`, behind token auth.
    pub token_host: Option<String>,
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
}

/// The registry binary: `MCPFLEET_TEST_REGISTRY`, else Debian's `/usr/bin/docker-registry`, else on PATH.
fn registry_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MCPFLEET_TEST_REGISTRY") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/docker-registry");
    if debian.exists() {
        return debian;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("docker-registry")).find(|p| p.exists()));
    on_path.unwrap_or_else(|| {
        panic!(
            "docker-registry (the CNCF distribution registry) not found: scripts/test.sh installs it \
             (`apt-get install -y docker-registry`), or set MCPFLEET_TEST_REGISTRY to its binary"
        )
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/registry_lab.py")
}

/// Starts `cmd`, whose output (stdout or stderr, per `from_stderr`) announces `listening on 127.0.0.1:PORT`;
/// returns the child and that address once announced. Everything it prints goes to `log`.
fn start_announcing(mut cmd: Command, log: &Path, from_stderr: bool) -> (Child, String) {
    let file = std::fs::File::create(log).unwrap();
    if from_stderr {
        cmd.stdout(file).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped()).stderr(file);
    }
    let mut child = cmd.stdin(Stdio::null()).spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let out: Box<dyn Read + Send> =
        if from_stderr { Box::new(child.stderr.take().unwrap()) } else { Box::new(child.stdout.take().unwrap()) };
    let (tx, rx) = mpsc::channel();
    let copy = log.with_extension("out");
    std::thread::spawn(move || {
        let mut keep = std::fs::File::create(copy).unwrap();
        let mut sent = false;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = writeln!(keep, "{line}");
            if !sent && let Some(at) = line.split("listening on ").nth(1) {
                let addr: String = at.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => (child, addr),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            let out = std::fs::read_to_string(log.with_extension("out")).unwrap_or_default();
            panic!("{cmd:?} did not announce its port within 30 s (exit {status:?}): {out}");
        }
    }
}

/// The HTTP status of `GET path` on `host` (HTTP/1.0), if it answers.
pub fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// `GET path` on `host` (HTTP/1.0): the body as JSON.
pub fn http_json(host: &str, path: &str) -> Value {
    let mut s = TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
}

impl RegistryLab {
    /// An open registry: anyone may pull and push.
    pub fn open() -> RegistryLab {
        RegistryLab::start(false)
    }

    /// A registry behind token auth: pushing and pulling need [`USER`]/[`PASSWORD`]; anonymous tokens grant
    /// nothing.
    pub fn token_auth() -> RegistryLab {
        RegistryLab::start(true)
    }

    fn start(token_auth: bool) -> RegistryLab {
        let binary = registry_binary();
        let dir = tempfile::tempdir().unwrap();
        let mut lab = RegistryLab { host: String::new(), token_host: None, dir, children: Vec::new() };
        let mut auth = String::new();
        if token_auth {
            let keys = lab.dir.path().join("keys");
            let out = Command::new(super::python()).arg(script()).arg("keys").arg(&keys).output().unwrap();
            assert!(out.status.success(), "registry_lab.py keys: {}", String::from_utf8_lossy(&out.stderr));
            let mut cmd = Command::new(super::python());
            cmd.arg(script())
                .args(["token-server", "--issuer", "mcpfleet-lab", "--user", USER, "--password", PASSWORD])
                .arg("--key")
                .arg(keys.join("token.key"))
                .arg("--cert")
                .arg(keys.join("token.crt"));
            let (child, addr) = start_announcing(cmd, &lab.dir.path().join("token.log"), false);
            lab.children.push(child);
            auth = format!(
                "auth:\n  token:\n    realm: http://{addr}/token\n    service: mcpfleet-lab-registry\n    issuer: mcpfleet-lab\n    rootcertbundle: {}\n",
                keys.join("token.crt").display()
            );
            lab.token_host = Some(addr);
        }
        let storage = lab.dir.path().join("storage");
        std::fs::create_dir(&storage).unwrap();
        let config = lab.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: mcpfleet-lab\n{auth}",
                storage.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(&binary);
        cmd.arg("serve").arg(&config);
        let (child, addr) = start_announcing(cmd, &lab.dir.path().join("registry.log"), true);
        lab.children.push(child);
        lab.host = addr;
        lab.wait_ready(&lab.host.clone());
        lab
    }

    /// Polls `GET /v2/` until the registry answers 200 (open) or 401 (token auth).
    fn wait_ready(&mut self, host: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            for child in &mut self.children {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!("a lab process exited ({status}); logs in {}", self.dir.path().display());
                }
            }
            if matches!(http_status(host, "/v2/"), Some(200 | 401)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the registry at {host} did not answer /v2/ within 30 s");
    }

    /// Pushes `repository:tag` of `kind` (`oci-index`, `docker-list`, `oci-manifest`, `docker-manifest`) for
    /// `platforms` to `host` (the registry, or a proxy in front of it): {"digest", "manifests": {platform: digest}}.
    pub fn push_to(&self, host: &str, repository: &str, tag: &str, kind: &str, platforms: &[&str]) -> Value {
        self.push_with(host, repository, tag, kind, platforms, &[])
    }

    /// [`RegistryLab::push_to`] with each `(platform, config)` of `execs` as that platform's container config
    /// (`{"Entrypoint": […], "Cmd": […]}`; the others run `{"Cmd": ["/server"]}`).
    pub fn push_with(
        &self,
        host: &str,
        repository: &str,
        tag: &str,
        kind: &str,
        platforms: &[&str],
        execs: &[(&str, &str)],
    ) -> Value {
        let mut cmd = Command::new(super::python());
        cmd.arg(script()).args(["push", "--registry", host, "--repository", repository, "--tag", tag, "--kind", kind]);
        for p in platforms {
            cmd.args(["--platform", p]);
        }
        for (platform, config) in execs {
            cmd.args(["--exec", &format!("{platform}={config}")]);
        }
        if self.token_host.is_some() {
            cmd.args(["--user", USER, "--password", PASSWORD]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "push {repository}:{tag}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// [`RegistryLab::push_to`] the registry itself; the digest at the tag.
    pub fn push(&self, repository: &str, tag: &str, kind: &str, platforms: &[&str]) -> String {
        self.push_to(&self.host, repository, tag, kind, platforms)["digest"].as_str().unwrap().to_string()
    }

    /// Starts `registry_lab.py proxy` in front of the registry with `args`; its `127.0.0.1:PORT`.
    pub fn proxy(&mut self, args: &[&str]) -> String {
        let mut cmd = Command::new(super::python());
        cmd.arg(script()).args(["proxy", "--upstream", &format!("http://{}", self.host)]).args(args);
        let n = self.children.len();
        let (child, addr) = start_announcing(cmd, &self.dir.path().join(format!("proxy-{n}.log")), false);
        self.children.push(child);
        self.wait_ready(&addr);
        addr
    }

    /// Writes a Docker config file into a directory of its own with `auths` for `host` (`user:password` as
    /// base64 `auth`); returns its path.
    pub fn docker_config(&self, name: &str, host: &str, user: &str, password: &str) -> PathBuf {
        use base64::Engine as _;
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let path = dir.join("config.json");
        std::fs::write(&path, format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)).unwrap();
        path
    }
}

impl Drop for RegistryLab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

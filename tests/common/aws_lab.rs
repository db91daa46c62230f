//! A lab on moto's server: starts `moto_server` from the test venv on a free loopback port, seeds it with the
//! example fleet's world (scripts/moto_world.py), and runs the binary with `--backend aws` against it.
//! Missing moto is a loud failure, never a skip.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct AwsLab {
    pub endpoint: String,
    pub seed: Value,
    pub dir: tempfile::TempDir,
    moto: Child,
}

impl AwsLab {
    /// A fresh moto, seeded (images, secrets, and the load balancers of [`AwsLab::load_balancers`]), with the
    /// example manifests copied and pointed at its subnets and security group.
    pub fn new() -> AwsLab {
        let mut lab = AwsLab::bare();
        let python = super::python();
        let out = Command::new(&python)
            .arg(repo().join("scripts/moto_world.py"))
            .args(["seed", "--endpoint", &lab.endpoint])
            .output()
            .unwrap();
        assert!(out.status.success(), "seeding moto failed: {}", String::from_utf8_lossy(&out.stderr));
        lab.seed = serde_json::from_slice(&out.stdout).unwrap();
        std::fs::create_dir(lab.manifests()).unwrap();
        let subnets = lab.seed["subnets"].as_array().unwrap();
        for f in ["fleet.yaml", "documents.yaml", "database.yaml", "search.yaml"] {
            let text = std::fs::read_to_string(repo().join("manifests").join(f)).unwrap();
            let text = text
                .replace("subnet-0abc1234def567890", subnets[0].as_str().unwrap())
                .replace("subnet-0abc1234def567891", subnets[1].as_str().unwrap())
                .replace("sg-0abc1234def567890", lab.seed["securityGroups"][0].as_str().unwrap());
            std::fs::write(lab.manifests().join(f), text).unwrap();
        }
        lab
    }

    /// A fresh moto with nothing in it (for S3 and DynamoDB beside the sim backend).
    pub fn bare() -> AwsLab {
        let python = super::python();
        let moto_server = python.with_file_name("moto_server");
        assert!(moto_server.exists(), "{} not found: run scripts/test.sh to create .venv", moto_server.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let moto = Command::new(&moto_server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Not MOTO_ECS_SERVICE_RUNNING: in that mode moto answers with default deployment configurations
            // instead of the ones it was given, which would read as drift on every pass.
            .env_remove("MOTO_ECS_SERVICE_RUNNING")
            // The request recorder (off until started) counts what reaches the server; its file goes in the lab.
            .env("MOTO_ENABLE_RECORDING", "True")
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut lab = AwsLab { endpoint, seed: Value::Null, dir, moto };
        lab.wait_until_up(port);
        lab
    }

    fn wait_until_up(&mut self, port: u16) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.moto.try_wait().unwrap() {
                panic!("moto_server exited ({status}): {}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = write!(s, "GET /moto-api/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read(&mut buf).is_ok_and(|n| n >= 12 && buf.starts_with(b"HTTP/1")) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not come up within 30 s: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// The environment that points the AWS SDK at moto with dummy credentials.
    pub fn env(&self, cmd: &mut Command) {
        endpoint_env(cmd, &self.endpoint);
    }

    /// Runs the binary with `--backend aws` against moto.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
        cmd.arg("--backend").arg("aws").args(args).current_dir(repo()).env_remove("MCPFLEET_LOG");
        self.env(&mut cmd);
        cmd.stdin(Stdio::null()).output().unwrap()
    }

    /// Runs and parses stdout as JSON; returns (exit code, document).
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        super::json_output(args, &self.run(args))
    }

    /// `apply -o json` of the lab's manifests plus `extra`.
    pub fn apply(&self, extra: &[&str]) -> (i32, Value) {
        let m = self.manifests();
        let mut args = vec!["apply", "-f", m.to_str().unwrap(), "-o", "json"];
        args.extend_from_slice(extra);
        self.json(&args)
    }

    /// ECS as boto3 sees it: {"services": {name: service}, "taskDefinitions": {family: [td…]}}.
    pub fn dump(&self) -> Value {
        self.world(&["dump"])
    }

    /// Runs `scripts/moto_world.py COMMAND --endpoint … ARGS` and parses its JSON.
    fn world(&self, args: &[&str]) -> Value {
        let out = Command::new(super::python())
            .arg(repo().join("scripts/moto_world.py"))
            .arg(args[0])
            .args(["--endpoint", &self.endpoint])
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(out.status.success(), "moto_world.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// One ECS call through boto3 (`update_service`, `tag_resource`, …), for states mcpfleet would not make.
    pub fn ecs(&self, operation: &str, args: Value) -> Value {
        self.world(&["ecs", operation, &args.to_string()])
    }

    /// The seeded ALB with listeners forwarding to two `ip` target groups (`mcp-documents`, which documents.yaml
    /// names, and `mcp-documents-green`), and an `instance` target group without one: their ARNs and the ALB's
    /// DNS name.
    pub fn load_balancers(&self) -> &Value {
        &self.seed["loadBalancers"]
    }

    /// One Application Auto Scaling call through boto3 (`describe_scalable_targets`, `register_scalable_target`,
    /// …), to read what moto has or change it behind mcpfleet's back.
    pub fn aas(&self, operation: &str, args: Value) -> Value {
        self.world(&["aas", operation, &args.to_string()])
    }

    /// One Secrets Manager call through boto3 (`put_secret_value`, `describe_secret`, …): a rotation as an
    /// operator or a rotation Lambda makes it.
    pub fn secretsmanager(&self, operation: &str, args: Value) -> Value {
        self.world(&["secretsmanager", operation, &args.to_string()])
    }

    /// One S3 call through boto3 (`create_bucket`, `put_object`, …).
    pub fn s3(&self, operation: &str, args: Value) -> Value {
        self.world(&["s3", operation, &args.to_string()])
    }

    /// One DynamoDB call through boto3 (`describe_table`, `get_item`, …).
    pub fn dynamodb(&self, operation: &str, args: Value) -> Value {
        self.world(&["dynamodb", operation, &args.to_string()])
    }

    /// Starts moto's request recorder afresh.
    pub fn start_recording(&self) {
        self.world(&["record", "start"]);
    }

    /// Requests moto received since [`AwsLab::start_recording`], by operation.
    pub fn recorded(&self) -> std::collections::BTreeMap<String, u64> {
        serde_json::from_value(self.world(&["record", "ops"])).unwrap()
    }

    /// Requests moto received since [`AwsLab::start_recording`], per access key id of their signature, by
    /// operation.
    pub fn recorded_by_key(&self) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        serde_json::from_value(self.world(&["record", "by-key"])).unwrap()
    }

    /// Runs the binary against moto with extra environment (set after the lab's own).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
        cmd.arg("--backend").arg("aws").args(args).current_dir(repo()).env_remove("MCPFLEET_LOG");
        self.env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).output().unwrap()
    }

    /// Writes an extra manifest into the lab's manifests.
    pub fn add_manifest(&self, file: &str, text: &str) {
        std::fs::write(self.manifests().join(file), text).unwrap();
    }

    /// Replaces text in one of the lab's manifests.
    pub fn edit_manifest(&self, file: &str, from: &str, to: &str) {
        let path = self.manifests().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in {file}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }
}

impl Drop for AwsLab {
    fn drop(&mut self) {
        let _ = self.moto.kill();
        let _ = self.moto.wait();
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Tags of an ECS resource as a map.
pub fn tags(v: &Value) -> std::collections::BTreeMap<String, String> {
    v["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| (t["key"].as_str().unwrap().to_string(), t["value"].as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Points the AWS SDK of `cmd` at `endpoint` with dummy credentials and nothing from the user's AWS set-up.
pub fn endpoint_env(cmd: &mut Command, endpoint: &str) {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION");
}

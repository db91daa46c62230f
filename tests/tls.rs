//! The AWS clients over HTTPS, on the binary's one TLS stack (rustls with ring): moto's server behind TLS with a
//! certificate of a test CA. Trusted through `SSL_CERT_FILE` (which the platform roots honour) the request goes
//! through; without it the certificate is refused and nothing is sent. An HTTPS client that did not check
//! certificates, or had no cryptography provider, would fail one half.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A CA, and a certificate for 127.0.0.1 and localhost it signed, written into `dir` (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) {
    let script = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("mcpfleet test CA")).issuer_name(name("mcpfleet test CA"))
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                   key_encipherment=False, data_encipherment=False, key_agreement=False,
                                   encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
pem = serialization.Encoding.PEM
open(f"{out}/ca.pem", "wb").write(ca.public_bytes(pem))
open(f"{out}/cert.pem", "wb").write(cert.public_bytes(pem))
open(f"{out}/key.pem", "wb").write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;
    let out = Command::new(common::python()).arg("-c").arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "making certificates failed: {}", String::from_utf8_lossy(&out.stderr));
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's server on HTTPS with `dir`'s certificate; returns it once it accepts connections.
fn moto_tls(dir: &Path) -> (Moto, u16) {
    let moto_server = common::python().with_file_name("moto_server");
    assert!(moto_server.exists(), "{} not found: run scripts/test.sh to create .venv", moto_server.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("moto.log")).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let child = Command::new(&moto_server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string(), "-s", "-c"])
        .arg(&cert)
        .arg("-k")
        .arg(&key)
        .current_dir(dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut moto = Moto(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = moto.0.try_wait().unwrap() {
            panic!("moto_server exited ({status}): {}", std::fs::read_to_string(dir.join("moto.log")).unwrap());
        }
        assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not listen within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    (moto, port)
}

fn create_table(port: u16, ca: Option<&Path>, table: &str) -> Output {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("mcpfleet"));
    cmd.args(["--backend", "aws", "lease", "create-table", &format!("dynamodb://{table}")]);
    common::aws_lab::endpoint_env(&mut cmd, &format!("https://localhost:{port}"));
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR").env_remove("MCPFLEET_LOG");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn aws_requests_go_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_moto, port) = moto_tls(dir.path());

    let trusted = create_table(port, Some(&dir.path().join("ca.pem")), "leases-tls");
    let (out, err) = (String::from_utf8_lossy(&trusted.stdout), String::from_utf8_lossy(&trusted.stderr));
    assert_eq!(trusted.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("created the lease table leases-tls"), "{out}{err}");

    let untrusted = create_table(port, None, "leases-untrusted");
    let (out, err) = (String::from_utf8_lossy(&untrusted.stdout), String::from_utf8_lossy(&untrusted.stderr));
    assert_eq!(untrusted.status.code(), Some(1), "{out}{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Nothing reached moto: the table was not made.
    let again = create_table(port, Some(&dir.path().join("ca.pem")), "leases-untrusted");
    assert!(String::from_utf8_lossy(&again.stdout).contains("created the lease table leases-untrusted"));
}

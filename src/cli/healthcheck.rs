//! `mcpfleet healthcheck`: exit 0 when the controller's `/healthz` answers 200 — the container's HEALTHCHECK,
//! which needs neither a shell nor curl in the image.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{EXIT_ERROR, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The URL to probe (http only).
    #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    match probe(&args.url, args.timeout) {
        Ok(200) => Ok(EXIT_OK),
        Ok(code) => {
            eprintln!("unhealthy: {} answered {code}", args.url);
            Ok(EXIT_ERROR)
        }
        Err(e) => {
            eprintln!("unhealthy: {}: {e}", args.url);
            Ok(EXIT_ERROR)
        }
    }
}

/// A plain HTTP/1.0 GET: the status code of the answer.
fn probe(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("only http:// URLs are supported"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = host.to_socket_addrs()?.next().ok_or_else(|| anyhow::anyhow!("cannot resolve {host}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: a server that answers after the request line must not see the rest arrive on a closed socket.
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    // The status line may arrive in pieces: read until it is complete (or the answer ends).
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    code.ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))
}

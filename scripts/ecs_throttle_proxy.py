#!/usr/bin/env python3
"""An HTTP reverse proxy that puts a moto server behind ECS's API token buckets.

  ecs_throttle_proxy.py --upstream http://127.0.0.1:5000 [--port 0] [--per-action] [--scale F]

moto enforces no rate limits; real ECS meters each account and region with token buckets and answers a request
that finds its bucket empty with HTTP 400 `ThrottlingException` "Rate exceeded". This proxy applies those buckets
to ECS requests (header `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>`), so a client against moto
meets what it meets against ECS. The numbers are ECS's documented ones, as in src/backend/limits.rs (burst /
refill per second):

  DescribeServices                                   100 / 20
  ListServices                                       100 / 20
  ListClusters                                       100 / 20
  CreateService, UpdateService, DeleteService         50 / 5
  RegisterTaskDefinition, DeregisterTaskDefinition    20 / 1
  DescribeTaskDefinition, ListTaskDefinitions         50 / 20
  TagResource, UntagResource                          20 / 10
  ListTasks, DescribeTasks                           100 / 20

Operations listed on one line share one bucket, as in mcpfleet's client-side limits (src/backend/limits.rs);
`--per-action` gives every operation a bucket of its own with the same numbers instead. Any other
operation, and every request to another service (ECR, Secrets Manager, STS, EC2, moto-api), is not throttled.
Buckets start full and refill continuously on the real clock (time.monotonic).

`--scale F` (default 1) multiplies every bucket's burst and refill rate by F, for an account whose buckets other
clients already draw on (or a client that believes its quotas are higher than they are): `--scale 0.5` halves
every bucket (DescribeServices 50 / 10, RegisterTaskDefinition 10 / 0.5, ...). F is a number above 0; a burst
scaled below one token is one token, so every operation can still get through.

A throttled request gets ECS's answer: HTTP 400, `Content-Type: application/x-amz-json-1.1`,
`x-amzn-ErrorType: ThrottlingException`, body `{"__type":"ThrottlingException","message":"Rate exceeded"}`.
botocore reads the code from `__type` and retries it as throttling; the Rust SDK's awsJson1_1 error parser reads
it from `x-amzn-ErrorType` (else `__type`), so SDK users see the error code `ThrottlingException`.

Everything else is forwarded as received: method, path and query, headers (Host included; hop-by-hop headers such
as Connection are not forwarded, and a chunked request body is forwarded de-chunked with a Content-Length), body;
then the response's status, headers and body. Every response carries a Content-Length, so clients keep their
HTTP/1.1 connections alive. Each forwarded request uses a fresh connection to the upstream.

Counters: every request received, by operation (the X-Amz-Target operation, else a query `Action=`, else the
path), and separately the throttled ones.
  GET  /_proxy/counts   {"requests": {op: n}, "throttled": {op: n}}
  POST /_proxy/reset    zero the counters and refill every bucket to full

As a module: `proxy = start(upstream, scale=1.0)`, then `proxy.url`, `proxy.counts()`, `proxy.reset()`, `proxy.close()`.
"""
import argparse
import collections
import http.client
import http.server
import json
import re
import threading
import time
import urllib.parse
import uuid

ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."

# (category, burst, refill per second, operations): the same table as `ecs_bucket` in src/backend/limits.rs, which
# mcpfleet's client and the sim use; keep the two in step.
BUCKETS = [
    ("DescribeServices", 100, 20.0, ("DescribeServices",)),
    ("ListServices", 100, 20.0, ("ListServices",)),
    ("ListClusters", 100, 20.0, ("ListClusters",)),
    ("ServiceWrite", 50, 5.0, ("CreateService", "UpdateService", "DeleteService")),
    ("TaskDefinitionWrite", 20, 1.0, ("RegisterTaskDefinition", "DeregisterTaskDefinition")),
    ("TaskDefinitionRead", 50, 20.0, ("DescribeTaskDefinition", "ListTaskDefinitions")),
    ("TagResource", 20, 10.0, ("TagResource", "UntagResource")),
    ("TaskRead", 100, 20.0, ("ListTasks", "DescribeTasks")),
]

THROTTLE_BODY = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each side; Expect is answered by the proxy.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "expect"}


class Bucket:
    def __init__(self, burst, per_second):
        self.burst = float(burst)
        self.per_second = per_second
        self.tokens = self.burst
        self.updated = time.monotonic()

    def take(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def refill(self, now):
        self.tokens = self.burst
        self.updated = now


class Limits:
    """The buckets and the counters, behind one lock."""

    def __init__(self, per_action=False, scale=1.0):
        self.lock = threading.Lock()
        self.bucket_of = {}
        self.buckets = []
        for category, burst, per_second, ops in scaled(scale):
            shared = None if per_action else Bucket(burst, per_second)
            for op in ops:
                b = shared or Bucket(burst, per_second)
                self.bucket_of[op] = b
                if b not in self.buckets:
                    self.buckets.append(b)
        self.requests = collections.Counter()
        self.throttled = collections.Counter()

    def admit(self, op, ecs_op):
        """Counts the request; False when it must be throttled."""
        with self.lock:
            self.requests[op] += 1
            bucket = self.bucket_of.get(ecs_op) if ecs_op else None
            if bucket is None or bucket.take(time.monotonic()):
                return True
            self.throttled[op] += 1
            return False

    def counts(self):
        with self.lock:
            return {"requests": dict(self.requests), "throttled": dict(self.throttled)}

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.throttled.clear()
            now = time.monotonic()
            for b in self.buckets:
                b.refill(now)


def scaled(scale):
    """BUCKETS with every burst and refill rate multiplied by `scale` (a burst of at least one token)."""
    if not scale > 0:
        raise ValueError(f"the scale must be a number above 0, not {scale}")
    return [(category, max(1.0, burst * scale), per_second * scale, ops) for category, burst, per_second, ops in BUCKETS]


def operation(headers, path, body):
    """(operation name for the counters, ECS operation or None)."""
    target = headers.get("X-Amz-Target")
    if target:
        op = target.rsplit(".", 1)[-1]
        return op, (op if target.startswith(ECS_TARGET_PREFIX) else None)
    query = urllib.parse.urlsplit(path).query
    m = re.search(r"(?:^|&)Action=([A-Za-z0-9]+)", query)
    if not m and body and "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        m = re.search(rb"(?:^|&)Action=([A-Za-z0-9]+)", body)
    if m:
        action = m.group(1)
        return (action.decode() if isinstance(action, bytes) else action), None
    return urllib.parse.urlsplit(path).path, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ecs-throttle-proxy"
    # Headers and body go out in separate writes: with Nagle's algorithm the body would wait for the client's
    # delayed ACK of the headers (about 40 ms a response on Linux).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        pass

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, headers, body, reason=None):
        self.send_response_only(status, reason)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        body = self.read_body()
        limits = self.server.limits
        if self.path.startswith("/_proxy/"):
            if self.command == "GET" and self.path == "/_proxy/counts":
                out = json.dumps(limits.counts(), sort_keys=True).encode()
                return self.reply(200, [("Content-Type", "application/json")], out)
            if self.command == "POST" and self.path == "/_proxy/reset":
                limits.reset()
                return self.reply(200, [("Content-Type", "application/json")], b"{}")
            return self.reply(404, [("Content-Type", "text/plain")], b"unknown proxy endpoint\n")
        op, ecs_op = operation(self.headers, self.path, body)
        if not limits.admit(op, ecs_op):
            return self.reply(400, [("Content-Type", "application/x-amz-json-1.1"),
                                    ("x-amzn-ErrorType", "ThrottlingException"),
                                    ("x-amzn-RequestId", str(uuid.uuid4())),
                                    ("Date", self.date_time_string())], THROTTLE_BODY)
        self.forward(body)

    def forward(self, body):
        host, port = self.server.upstream
        conn = http.client.HTTPConnection(host, port, timeout=300)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    conn.putheader(k, v)
            if body or self.command in ("POST", "PUT", "PATCH") or "Content-Length" in self.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            if self.command == "HEAD":
                # No body came; keep the length the upstream announced.
                self.send_response_only(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP:
                        self.send_header(k, v)
                if resp.getheader("Content-Length") is None:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.reply(resp.status, headers, data, resp.reason)
        except (OSError, http.client.HTTPException) as e:
            msg = f"ecs-throttle-proxy: upstream failed: {e}\n".encode()
            self.reply(502, [("Content-Type", "text/plain")], msg)
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # clients open many connections at once; a short backlog drops SYNs (1 s retries)


class ThrottleProxy:
    """A running proxy (serve_forever in a daemon thread)."""

    def __init__(self, upstream, host="127.0.0.1", port=0, per_action=False, scale=1.0):
        u = urllib.parse.urlsplit(upstream)
        self.server = Server((host, port), Handler)
        self.server.upstream = (u.hostname, u.port or 80)
        self.server.limits = Limits(per_action, scale)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="ecs-throttle-proxy", daemon=True)
        self.thread.start()

    def counts(self):
        return self.server.limits.counts()

    def reset(self):
        self.server.limits.reset()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def start(upstream, host="127.0.0.1", port=0, per_action=False, scale=1.0):
    return ThrottleProxy(upstream, host, port, per_action, scale)


def positive(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"`{text}` is not a number above 0")
    return value


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="the moto server, e.g. http://127.0.0.1:5000")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    ap.add_argument("--per-action", action="store_true", help="one bucket per operation instead of shared ones")
    ap.add_argument("--scale", type=positive, default=1.0,
                    help="multiply every bucket's burst and refill rate by this (0.5: every bucket halved)")
    args = ap.parse_args()
    proxy = start(args.upstream, args.host, args.port, args.per_action, args.scale)
    print(proxy.url, flush=True)
    try:
        proxy.thread.join()
    except KeyboardInterrupt:
        proxy.close()


if __name__ == "__main__":
    main()

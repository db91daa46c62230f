#!/usr/bin/env python3
"""Test tools around the CNCF distribution registry (Debian's `docker-registry`), which the tests start themselves.

  keys DIR            an RSA key and its self-signed certificate for token auth (DIR/token.key, DIR/token.crt)
  token-server ...    a token service for the registry's `auth.token` (JWTs signed with that key, x5c header):
                      valid Basic credentials get the actions they ask for, anonymous requests get no access,
                      wrong credentials get 401
  proxy ...           a stub in front of a registry: strips Docker-Content-Digest (--strip-digest), answers the
                      first N manifest requests with 429 and Retry-After (--throttle N), holds each request for
                      --delay-ms, asks for HTTP Basic credentials USER:PASSWORD (--basic-auth); GET /_lab/requests
                      says what it saw: {"requests": [...], "maxInFlight": N}
  push ...            pushes an image through the distribution API over plain HTTP: blobs (POST then PUT
                      ?digest=), platform manifests by digest, then the index (or the one manifest) at the tag;
                      each config runs {"Cmd": ["/server"]} unless --exec PLATFORM=JSON gives that platform's
                      own container config (its Entrypoint and Cmd; {} for neither);
                      prints {"digest", "manifests": {platform: digest}} as JSON

Servers listen on 127.0.0.1 on a free port and print `listening on 127.0.0.1:PORT` once they accept requests.
Only the standard library and `cryptography` (installed with moto in .venv) are used.
"""

import argparse
import base64
import datetime
import hashlib
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# kind → (index media type or None, manifest, config, layer)
KINDS = {
    "oci-index": (OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
    "docker-list": (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
    "oci-manifest": (None, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
    "docker-manifest": (None, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def serve(handler_class, state):
    """Serves on a free loopback port, announcing it on stdout once the socket accepts connections."""
    handler_class.state = state
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, fmt % args))

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


# ---- keys and the token service ----


def cmd_keys(args):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcpfleet-lab-token")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "token.key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(os.path.join(args.dir, "token.crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


class TokenHandler(Quiet):
    def do_GET(self):
        st = self.state
        url = urllib.parse.urlparse(self.path)
        if url.path != "/token":
            return self.reply(404, b'{"details": "not found"}')
        query = urllib.parse.parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                user, password = "", None
            if (user, password) != (st["user"], st["password"]):
                with st["lock"]:
                    st["requests"].append({"scope": query.get("scope", []), "user": user, "status": 401})
                return self.reply(401, b'{"details": "incorrect username or password"}', [("Content-Type", "application/json")])
        access = []
        if user is not None:
            for scope in query.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {
            "iss": st["issuer"],
            "sub": user or "",
            "aud": query.get("service", [""])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": b64url(os.urandom(12)),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "RS256", "x5c": [st["cert_der"]]}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = st["key"].sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = signing_input + "." + b64url(signature)
        with st["lock"]:
            st["requests"].append({"scope": query.get("scope", []), "user": user, "status": 200})
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.reply(200, body, [("Content-Type", "application/json")])


def cmd_token_server(args):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    state = {
        "key": key,
        "cert_der": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
        "issuer": args.issuer,
        "user": args.user,
        "password": args.password,
        "lock": threading.Lock(),
        "requests": [],
    }
    serve(TokenHandler, state)


# ---- the stub proxy ----


class ProxyHandler(Quiet):
    HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}

    def handle_any(self):
        st = self.state
        if self.path == "/_lab/requests":
            with st["lock"]:
                body = json.dumps({"requests": st["requests"], "maxInFlight": st["max_in_flight"]}).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        with st["lock"]:
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        self.counted = True
        try:
            self.forward()
        finally:
            self.leave()

    def leave(self):
        # A request stops counting as in flight before its answer's first byte is written: once the client has
        # read an answer it may send the next request at once, and that one must not overlap this one's count.
        if getattr(self, "counted", False):
            self.counted = False
            with self.state["lock"]:
                self.state["in_flight"] -= 1

    def forward(self):
        st = self.state
        if st["delay"]:
            time.sleep(st["delay"])
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if st["basic"] and self.headers.get("Authorization") != "Basic " + st["basic"]:
            self.record(401)
            envelope = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            challenge = ("WWW-Authenticate", 'Basic realm="registry-lab"')
            return self.reply(401, envelope, [challenge, ("Content-Type", "application/json")])
        with st["lock"]:
            throttle = "/manifests/" in self.path and st["throttle"] > 0
            if throttle:
                st["throttle"] -= 1
        if throttle:
            self.record(429)
            envelope = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            return self.reply(429, envelope, [("Retry-After", str(st["retry_after"])), ("Content-Type", "application/json")])
        up = urllib.parse.urlparse(st["upstream"])
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP and k.lower() != "host"}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.record(resp.status)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in self.HOP or k.lower() == "content-length":
                continue
            if st["strip_digest"] and k.lower() == "docker-content-digest":
                continue
            self.send_header(k, v)
        # A HEAD answer keeps the length the GET would have.
        self.send_header("Content-Length", resp.getheader("Content-Length") or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def record(self, status):
        entry = {"method": self.command, "path": self.path, "status": status, "auth": self.headers.get("Authorization", "").split(" ")[0]}
        with self.state["lock"]:
            self.state["requests"].append(entry)
        self.leave()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def cmd_proxy(args):
    state = {
        "upstream": args.upstream,
        "strip_digest": args.strip_digest,
        "throttle": args.throttle,
        "retry_after": args.retry_after,
        "delay": args.delay_ms / 1000.0,
        "basic": base64.b64encode(args.basic_auth.encode()).decode() if args.basic_auth else None,
        "lock": threading.Lock(),
        "requests": [],
        "in_flight": 0,
        "max_in_flight": 0,
    }
    serve(ProxyHandler, state)


# ---- pushing ----


class Registry:
    """A distribution-API client for pushing over plain HTTP, with token auth when the registry asks for it."""

    def __init__(self, host, user=None, password=None):
        self.host = host
        self.user = user
        self.password = password
        self.tokens = {}

    def request(self, method, path, body=None, headers=None, scope=None):
        headers = dict(headers or {})
        for attempt in range(2):
            if scope in self.tokens:
                headers["Authorization"] = "Bearer " + self.tokens[scope]
            conn = http.client.HTTPConnection(self.host, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if resp.status == 401 and attempt == 0 and scope:
                self.tokens[scope] = self.token(resp.getheader("WWW-Authenticate"), scope)
                continue
            return resp, data
        return resp, data

    def token(self, challenge, scope):
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = urllib.parse.urlparse(params["realm"])
        query = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
        headers = {}
        if self.user:
            creds = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = "Basic " + creds
        conn = http.client.HTTPConnection(realm.hostname, realm.port, timeout=30)
        conn.request("GET", f"{realm.path}?{query}", headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status != 200:
            raise SystemExit(f"token service refused: {resp.status} {data!r}")
        return json.loads(data)["token"]

    def blob(self, repo, data):
        scope = f"repository:{repo}:pull,push"
        digest = digest_of(data)
        resp, body = self.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"", headers={"Content-Length": "0"}, scope=scope)
        if resp.status != 202:
            raise SystemExit(f"upload start for {repo}: {resp.status} {body!r}")
        location = urllib.parse.urlparse(resp.getheader("Location"))
        sep = "&" if location.query else "?"
        path = f"{location.path}?{location.query}{sep}digest={digest}" if location.query else f"{location.path}?digest={digest}"
        resp, body = self.request(
            "PUT", path, body=data, headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))}, scope=scope
        )
        if resp.status != 201:
            raise SystemExit(f"blob {digest} for {repo}: {resp.status} {body!r}")
        return digest

    def manifest(self, repo, reference, media_type, doc):
        data = json.dumps(doc, indent=2).encode()
        scope = f"repository:{repo}:pull,push"
        resp, body = self.request(
            "PUT", f"/v2/{repo}/manifests/{reference}", body=data, headers={"Content-Type": media_type, "Content-Length": str(len(data))}, scope=scope
        )
        if resp.status != 201:
            raise SystemExit(f"manifest {reference} for {repo}: {resp.status} {body!r}")
        return digest_of(data), len(data)


def cmd_push(args):
    index_type, manifest_type, config_type, layer_type = KINDS[args.kind]
    platforms = args.platform or ["linux/amd64", "linux/arm64"]
    if index_type is None and len(platforms) != 1:
        raise SystemExit(f"{args.kind} holds one platform, not {platforms}")
    execs = {}
    for item in args.exec or []:
        platform, _, config = item.partition("=")
        execs[platform] = json.loads(config)
    reg = Registry(args.registry, args.user, args.password)
    entries = []
    out = {"manifests": {}}
    for platform in platforms:
        os_name, arch = platform.split("/", 1)
        # Layer content is not checked by the registry: a few random bytes make every push a new digest.
        layer = os.urandom(64)
        layer_digest = reg.blob(args.repository, layer)
        config = json.dumps(
            {
                "architecture": arch,
                "os": os_name,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "config": execs.get(platform, {"Cmd": ["/server"]}),
                "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
            }
        ).encode()
        config_digest = reg.blob(args.repository, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": len(layer)}],
        }
        reference = args.tag if index_type is None else digest_of(json.dumps(manifest, indent=2).encode())
        digest, size = reg.manifest(args.repository, reference, manifest_type, manifest)
        out["manifests"][platform] = digest
        entries.append({"mediaType": manifest_type, "digest": digest, "size": size, "platform": {"os": os_name, "architecture": arch}})
    if index_type is None:
        out["digest"] = out["manifests"][platforms[0]]
    else:
        index = {"schemaVersion": 2, "mediaType": index_type, "manifests": entries}
        out["digest"], _ = reg.manifest(args.repository, args.tag, index_type, index)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("dir")
    t = sub.add_parser("token-server")
    for name in ("key", "cert", "issuer", "user", "password"):
        t.add_argument("--" + name, required=True)
    p = sub.add_parser("proxy")
    p.add_argument("--upstream", required=True)
    p.add_argument("--strip-digest", action="store_true")
    p.add_argument("--throttle", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--basic-auth", metavar="USER:PASSWORD")
    u = sub.add_parser("push")
    u.add_argument("--registry", required=True, help="HOST:PORT, plain HTTP")
    u.add_argument("--repository", required=True)
    u.add_argument("--tag", required=True)
    u.add_argument("--kind", choices=sorted(KINDS), default="oci-index")
    u.add_argument("--platform", action="append", help="OS/ARCH; repeatable (default linux/amd64 and linux/arm64)")
    u.add_argument("--exec", action="append", metavar="PLATFORM=JSON", help="a platform's container config; repeatable")
    u.add_argument("--user")
    u.add_argument("--password")
    args = ap.parse_args()
    {"keys": cmd_keys, "token-server": cmd_token_server, "proxy": cmd_proxy, "push": cmd_push}[args.cmd](args)


if __name__ == "__main__":
    main()

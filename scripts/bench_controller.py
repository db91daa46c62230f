#!/usr/bin/env python3
"""Benchmark `mcpfleet run` on the sim backend.

  bench_controller.py --mcpfleet target/release/mcpfleet --fleet-gen target/release/examples/fleet_gen --workdir DIR

Reports: peak RSS (VmHWM) of the controller once N=1000 services have converged; API requests per steady-state
pass for 100 services (from its /metrics); and the time from a manifest edit to the write reaching the backend.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import time
import urllib.request

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, mcpfleet, fleet_gen, workdir, n):
        self.mcpfleet, self.dir = mcpfleet, os.path.join(workdir, str(n))
        os.makedirs(os.path.join(self.dir, "m"), exist_ok=True)
        self.state = os.path.join(self.dir, "sim.json")
        if os.path.exists(self.state):
            os.remove(self.state)
        fleet = subprocess.run([fleet_gen, str(n), "5", "3"], check=True, capture_output=True, text=True).stdout
        open(os.path.join(self.dir, "m", "fleet.yaml"), "w").write(fleet)
        for r in range(5):
            self.cli("sim", "push", f"{REGISTRY}/mcp/repo-{r}:v1")
        for s in range(3):
            self.cli("sim", "secret", f"bench/secret-{s}")

    def cli(self, *args):
        return subprocess.run([self.mcpfleet, "--backend", "sim", "--sim-state", self.state, *args],
                              check=True, capture_output=True, text=True).stdout

    def start(self, interval):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [self.mcpfleet, "--backend", "sim", "--sim-state", self.state, "run", "-f", os.path.join(self.dir, "m"),
             "--interval", interval, "--listen", f"127.0.0.1:{self.port}", "--sim-speed", "20"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "run.log"), "w"))

    def metrics(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'mcpfleet_(api_requests_total\{operation="(\w+)"\}|reconcile_passes_total\{outcome="ok"\}) (\S+)', line)
            if m:
                out[m.group(2) or "passes"] = float(m.group(3))
        return out

    def converged(self):
        services = json.loads(self.cli("status", "--cluster", "bench", "-o", "json"))["services"]
        return services and all(s["rolloutState"] == "COMPLETED" and s["lastGood"] == s["taskDefinition"] for s in services)

    def wait(self, what, ok, timeout=600, every=0.5):
        start = time.monotonic()
        while not ok():
            if time.monotonic() - start > timeout:
                raise SystemExit(f"timed out: {what}")
            time.sleep(every)
        return time.monotonic() - start

    def peak_rss_mib(self):
        status = open(f"/proc/{self.proc.pid}/status").read()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpfleet", required=True)
    ap.add_argument("--fleet-gen", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()

    big = Lab(args.mcpfleet, args.fleet_gen, args.workdir, 1000)
    big.start("5s")
    secs = big.wait("1000 services to converge", big.converged)
    print(f"run over 1000 sim services: converged in {secs:.0f} s real; peak RSS {big.peak_rss_mib():.1f} MiB")
    big.stop()

    lab = Lab(args.mcpfleet, args.fleet_gen, args.workdir, 100)
    lab.start("2s")
    lab.wait("100 services to converge", lab.converged)
    time.sleep(3)
    before = lab.metrics()
    time.sleep(10)
    after = lab.metrics()
    passes = after["passes"] - before["passes"]
    per_pass = {k: (after[k] - before.get(k, 0)) / passes for k in after if k != "passes" and after[k] > before.get(k, 0)}
    print(f"steady state, 100 services: {passes:.0f} passes; requests per pass {per_pass}")

    # A manifest edit: the next write is a RegisterTaskDefinition for the changed service.
    lab.cli("sim", "push", f"{REGISTRY}/mcp/repo-0:v2")
    path = os.path.join(lab.dir, "m", "fleet.yaml")
    docs = open(path).read().split("---\n")
    docs[1] = docs[1].replace(":v1\n", ":v2\n")
    registered = lab.metrics().get("RegisterTaskDefinition", 0)
    t = time.monotonic()
    open(path, "w").write("---\n".join(docs))
    lab.wait("the write", lambda: lab.metrics().get("RegisterTaskDefinition", 0) > registered, timeout=60, every=0.02)
    print(f"spec change to first write: {time.monotonic() - t:.2f} s (interval 2 s; manifests polled every 0.25 s)")
    lab.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark the CLI on the sim backend at fleet scale.

  bench_scale.py --mcpfleet target/release/mcpfleet --fleet-gen target/release/examples/fleet_gen --workdir DIR
                 [--services 1000] [--repos 1000] [--big 10000] [--runs 3]

Reports, as medians of --runs runs (wall time, on the real binary):
  - `apply --wait` creating the fleet of --services services (one ECR repository each, --repos of them);
  - `plan` of that converged fleet, and whether the state files were left byte-identical;
  - `run` (the controller) converging the fleet from nothing, until `status` shows every service completed;
  - `plan` of --big services (a converged fleet, made by `apply`): its time and peak RSS;
  - `status --cluster` of the --services fleet and of the --big one: time and peak RSS of each, and their ratios
    to the ratio of services (linear: time and memory per service stay the same).
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import time

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(path):
    h = hashlib.sha256()
    for p in (path, path + ".journal"):
        if os.path.exists(p):
            h.update(p.encode())
            h.update(open(p, "rb").read())
    return h.hexdigest()


class Bench:
    def __init__(self, args):
        self.bin, self.gen, self.dir = args.mcpfleet, args.fleet_gen, args.workdir
        os.makedirs(self.dir, exist_ok=True)

    def cli(self, state, *args, check=True):
        """Runs a command; returns (wall seconds, peak RSS MiB, exit code, stdout)."""
        start = time.monotonic()
        p = subprocess.Popen([self.bin, "--backend", "sim", "--sim-state", state, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate()
        wall = time.monotonic() - start
        if check and p.returncode not in (0, 2):
            raise SystemExit(f"{args} failed ({p.returncode}):\n{err}")
        return wall, p.returncode, out

    def rss(self, state, *args):
        """Wall time and peak RSS (MiB) of one command, from wait4's rusage of that child alone."""
        start = time.monotonic()
        p = subprocess.Popen([self.bin, "--backend", "sim", "--sim-state", state, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 2):
            raise SystemExit(f"{args} failed ({code})")
        return wall, usage.ru_maxrss / 1024

    def fleet(self, name, services, repos):
        d = os.path.join(self.dir, name)
        os.makedirs(d, exist_ok=True)
        fleet = subprocess.run([self.gen, str(services), str(repos), "3"], check=True, capture_output=True,
                               text=True).stdout
        open(os.path.join(d, "fleet.yaml"), "w").write(fleet)
        return d

    def seed(self, repos):
        """A state with `repos` repositories (tag v1) and the fleet's 3 secrets."""
        state = os.path.join(self.dir, f"seed-{repos}.json")
        if not os.path.exists(state):
            for r in range(repos):
                self.cli(state, "sim", "push", f"{REGISTRY}/mcp/repo-{r}:v1")
            for s in range(3):
                self.cli(state, "sim", "secret", f"bench/secret-{s}")
        return state

    def fresh(self, seed, name):
        state = os.path.join(self.dir, name)
        for p in (state, state + ".journal"):
            if os.path.exists(p):
                os.remove(p)
        shutil.copy(seed, state)
        return state

    def converged(self, state):
        _, _, out = self.cli(state, "status", "--cluster", "bench", "-o", "json")
        services = json.loads(out)["services"]
        return services and all(s["rolloutState"] == "COMPLETED" for s in services), len(services)


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpfleet", required=True)
    ap.add_argument("--fleet-gen", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--big", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: apply,plan,run,big,status")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    b = Bench(args)
    n, runs = args.services, args.runs
    seed = b.seed(args.repos)
    m = b.fleet(f"fleet-{n}", n, args.repos)

    converged = None
    if "apply" not in skip or "plan" not in skip or "status" not in skip:
        times = []
        for i in range(runs if "apply" not in skip else 1):
            state = b.fresh(seed, f"apply-{i}.json")
            wall, code, out = b.cli(state, "apply", "-f", m, "--wait", "-o", "json")
            assert code == 0, code
            times.append(wall)
            converged = state
        ok, count = b.converged(converged)
        assert ok and count == n, (ok, count)
        if "apply" not in skip:
            print(f"apply --wait, {n} services / {args.repos} repositories: median {med(times):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})")

    if "plan" not in skip:
        times, unchanged = [], True
        before = digest(converged)
        for _ in range(runs):
            wall, code, out = b.cli(converged, "plan", "-f", m, "-o", "json", "--detailed-exitcode")
            assert code == 0, f"the converged fleet plans changes (exit {code})"
            times.append(wall)
            unchanged &= digest(converged) == before
        print(f"plan of the converged fleet, {n} services: median {med(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}); state files byte-identical: {unchanged}")

    if "run" not in skip:
        times = []
        for i in range(runs):
            state = b.fresh(seed, f"run-{i}.json")
            port = free_port()
            start = time.monotonic()
            proc = subprocess.Popen(
                [b.bin, "--backend", "sim", "--sim-state", state, "run", "-f", m, "--interval", "5s",
                 "--listen", f"127.0.0.1:{port}", "--sim-speed", "20"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(b.dir, f"run-{i}.log"), "w"))
            try:
                while True:
                    ok, count = b.converged(state)
                    if ok and count == n:
                        break
                    if time.monotonic() - start > 600:
                        raise SystemExit("run did not converge in 600 s")
                    time.sleep(0.5)
                times.append(time.monotonic() - start)
            finally:
                proc.terminate()
                proc.wait()
        print(f"run converging {n} services from nothing (--sim-speed 20): median {med(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")

    def status(state, count):
        """Median wall time and peak RSS of `status --cluster bench -o json` over `count` services."""
        times, rss = [], []
        for _ in range(runs):
            wall, peak = b.rss(state, "status", "--cluster", "bench", "-o", "json")
            times.append(wall)
            rss.append(peak)
        print(f"status of {count} services: median {med(times):.2f} s, peak RSS median {med(rss):.1f} MiB "
              f"(runs: {', '.join(f'{t:.2f} s/{r:.0f} MiB' for t, r in zip(times, rss))})")
        return med(times), med(rss)

    small = status(converged, n) if "status" not in skip else None

    if "big" not in skip:
        big = args.big
        mb = b.fleet(f"fleet-{big}", big, args.repos)
        state = b.fresh(seed, f"big-{big}.json")
        wall, code, _ = b.cli(state, "apply", "-f", mb, "-o", "json")
        assert code == 0, code
        print(f"apply (no wait) creating {big} services: {wall:.2f} s")
        times, rss = [], []
        for _ in range(runs):
            wall, peak = b.rss(state, "plan", "-f", mb, "-o", "json")
            times.append(wall)
            rss.append(peak)
        print(f"plan of {big} services: median {med(times):.2f} s, peak RSS median {med(rss):.1f} MiB "
              f"(runs: {', '.join(f'{t:.2f} s/{r:.0f} MiB' for t, r in zip(times, rss))})")
        if small is not None:
            wall, peak = status(state, big)
            print(f"status, {big} vs {n} services ({big / n:.0f}x): time {wall / small[0]:.1f}x, "
                  f"peak RSS {peak / small[1]:.1f}x")


if __name__ == "__main__":
    main()

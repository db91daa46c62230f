#!/usr/bin/env python3
"""Benchmark the aws backend against moto's server, side by side with PyPI's ecs-deploy.

  bench_moto.py --mcpfleet target/release/mcpfleet --fleet-gen target/release/examples/fleet_gen \
                --ecs-deploy PATH/TO/ecs --workdir DIR  [--services 100] [--changed 50] [--per-action-buckets]
                [--scale F]
  bench_moto.py --mcpfleet … --fleet-gen … --workdir DIR --noop-plan N [--scale F]

Reports:
  1. requests of a no-op `mcpfleet apply` over N converged services;
  2. requests and wall time of one `mcpfleet apply` that changes the image tag of M services (v1 -> v2);
  3. requests and wall time of M sequential `ecs deploy CLUSTER SERVICE --image ...` runs doing the same kind of
     change (they move the same M services back, v2 -> v1, so each tool deploys a real change);
then 2 and 3 again with moto behind ECS's API token buckets (scripts/ecs_throttle_proxy.py), and a side-by-side
summary of both setups.

Raw moto: requests are counted by moto's request recorder, for both tools alike. moto enforces no rate limits, so
this setup favours a client that does not pace itself: mcpfleet keeps to ECS's buckets on its side (its 50
registrations need 30 s: burst 20, then 1/s), ecs-deploy does not.

moto behind ECS's token buckets: both tools talk to the proxy, which answers what ECS answers when a bucket is
empty (HTTP 400 ThrottlingException "Rate exceeded"; botocore and mcpfleet retry it with backoff). Requests are
counted by the proxy: every request received, throttled ones included, and the throttled ones apart; moto's
recorder, which sees only the forwarded ones, is printed as a cross-check. The buckets are refilled to full
before each tool's run, so both start equal.

Between the setups, `mcpfleet apply` of the v1 fleet (straight to moto, not counted) puts the M services back under
mcpfleet on v1, as before the first round: ecs-deploy left them on its own revisions, which mcpfleet would see as
drift. The second round then repeats the first: mcpfleet v1 -> v2, ecs-deploy v2 -> v1. After every run, boto3
(straight to moto) checks that all M services run task definitions with the image tag that run deployed.

`--scale F` gives the proxy buckets F times ECS's (burst and refill; `--scale 0.5`: every bucket halved, as when
other clients of the account draw on the same buckets). mcpfleet still assumes ECS's defaults, so it meets
throttling and must pace itself down (adaptive pacing) without failing a deploy.

`--noop-plan N` measures something else instead: a fleet of N services with one ECR repository each, converged
(created straight to moto, with raised rates since moto has no limits), then `mcpfleet plan -o json` of it through
the proxy, 3 times: median wall time, requests and throttled requests at the proxy, and mcpfleet's own wait for
its client-side tokens by operation (`apiCalls.waitedMs`), BatchGetImage's (one per repository) included.

Run through `scripts/bench.sh moto [--scale F]` and `scripts/bench.sh moto-plan [N [--scale F]]`, which build the
binaries and (for the first) install ecs-deploy in a scratch venv.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ecs_throttle_proxy  # noqa: E402
import moto_world  # noqa: E402  (seeding helpers shared with the tests)

REGION = "us-east-1"
CLUSTER = "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recorder(endpoint, action):
    return moto_world.recorder(endpoint, action)


def operations(endpoint):
    """Requests recorded since the last reset, by operation (X-Amz-Target or Action); resets the recording."""
    counts = moto_world.record(endpoint, "ops")
    recorder(endpoint, "reset-recording")
    return counts


WRITES = {"RegisterTaskDefinition", "DeregisterTaskDefinition", "CreateService", "UpdateService", "DeleteService", "TagResource"}


def aws_env(endpoint):
    return dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def on_tag(ecs, names, tag, digests):
    """How many of `names` run a task definition whose image (of mcp/repo-*) is `tag` (boto3, straight to moto).

    mcpfleet pins images by digest (`repo@sha256:...`), ecs-deploy writes the tag (`repo:tag`): `digests` maps
    (repository, digest) to the tag it was pushed as."""
    arns = {}
    for i in range(0, len(names), 10):
        for s in ecs.describe_services(cluster=CLUSTER, services=names[i:i + 10])["services"]:
            arns[s["serviceName"]] = s["taskDefinition"]
    tags = {}
    for arn in set(arns.values()):
        td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        found = []
        for c in td["containerDefinitions"]:
            image = c["image"].split("/", 1)[-1]
            if not image.startswith("mcp/repo-"):
                continue
            if "@" in image:
                repo, digest = image.split("@", 1)
                found.append(digests.get((repo, digest)))
            else:
                found.append(image.rsplit(":", 1)[-1])
        tags[arn] = found
    return sum(1 for n in names if n in arns and tags[arns[n]] and all(t == tag for t in tags[arns[n]]))


def shown_errors(stderr):
    """The lines of a run's stderr that show the user an error or throttling."""
    return [line for line in stderr.splitlines() if any(w in line.lower() for w in ("error", "throttl", "rate exceeded"))]


def fmt_ops(counts):
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "}"


def start_moto(workdir):
    """A moto server with its request recorder enabled (the recorder's file goes in `workdir`): (process, URL)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MOTO_ENABLE_RECORDING="True")
    env.pop("MOTO_ECS_SERVICE_RUNNING", None)
    os.makedirs(workdir, exist_ok=True)
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            return moto, endpoint
        except Exception:
            if moto.poll() is not None:
                raise SystemExit(f"moto_server exited ({moto.returncode}) before answering at {endpoint}")
            if time.monotonic() > deadline:
                moto.kill()
                raise SystemExit(f"moto_server did not answer at {endpoint} within 30 s")
            time.sleep(0.1)


def network(endpoint):
    """A VPC's subnet and security group in moto: (subnet, security group)."""
    ec2 = moto_world.client("ec2", endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="bench", Description="bench", VpcId=vpc)["GroupId"]
    return subnet, sg


def noop_plan(args):
    """`--noop-plan N`: a converged fleet of N services, one ECR repository each, planned through the proxy."""
    n = args.noop_plan
    moto, endpoint = start_moto(args.workdir)
    proxy = None
    try:
        subnet, sg = network(endpoint)
        moto_world.client("ecs", endpoint).create_cluster(clusterName=CLUSTER)
        ecr = moto_world.client("ecr", endpoint)
        for r in range(n):
            ecr.create_repository(repositoryName=f"mcp/repo-{r}")
            moto_world.push(ecr, f"mcp/repo-{r}", "v1", ["amd64", "arm64"])
        sm = moto_world.client("secretsmanager", endpoint)
        for s in range(3):
            sm.create_secret(Name=f"bench/secret-{s}", SecretString="x")
        fleet = subprocess.run([args.fleet_gen, str(n), str(n), "3"], check=True, capture_output=True, text=True).stdout
        os.makedirs(f"{args.workdir}/m", exist_ok=True)
        open(f"{args.workdir}/m/fleet.yaml", "w").write(fleet.replace("subnet-0abc1234", subnet).replace("sg-0abc1234", sg))
        # Straight to moto, which has no limits: the raised rates only keep the set-up short.
        raised = ["--api-rate", "TaskDefinitionWrite=1000/1000", "--api-rate", "ServiceWrite=1000/1000"]
        p = subprocess.run([args.mcpfleet, "--backend", "aws", "apply", "-f", f"{args.workdir}/m", "-o", "json", *raised],
                           env=aws_env(endpoint), capture_output=True, text=True)
        assert p.returncode == 0, last_line(p.stderr)
        created = json.loads(p.stdout)["services"]
        assert len(created) == n and all(s["outcome"] == "created" for s in created), created[:3]

        proxy = ecs_throttle_proxy.start(endpoint, scale=args.scale)
        print(f"no-op plan of {n} converged services ({n} ECR repositories), through the proxy (--scale {args.scale}), "
              f"{args.mcpfleet}")
        walls = []
        for run in range(3):
            proxy.reset()
            t = time.monotonic()
            p = subprocess.run([args.mcpfleet, "--backend", "aws", "plan", "-f", f"{args.workdir}/m", "-o", "json"],
                               env=aws_env(proxy.url), capture_output=True, text=True)
            walls.append(time.monotonic() - t)
            assert p.returncode == 0, f"exit {p.returncode}: {last_line(p.stderr)}"
            doc = json.loads(p.stdout)
            changes = [c for c in doc["services"] if c["action"] != "noop"]
            shown = shown_errors(p.stderr)
            counts = proxy.counts()
            calls = doc["apiCalls"]
            waited = calls["waitedMs"]
            print(f"  run {run + 1}: {walls[-1]:.2f} s; {sum(counts['requests'].values())} requests at the proxy, "
                  f"{sum(counts['throttled'].values())} throttled; user-visible errors: {len(shown)}; "
                  f"changes planned: {len(changes)}")
            print(f"    requests {fmt_ops(counts['requests'])}")
            print(f"    mcpfleet's wait for its own tokens (ms) {fmt_ops(waited)}; BatchGetImage: {waited.get('BatchGetImage')} ms "
                  f"over {calls['calls'].get('BatchGetImage', 0)} calls")
        print(f"  median wall time {statistics.median(walls):.2f} s (runs: {', '.join(f'{w:.2f}' for w in walls)})")
    finally:
        if proxy is not None:
            proxy.close()
        moto.terminate()
        moto.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpfleet", required=True)
    ap.add_argument("--fleet-gen", required=True)
    ap.add_argument("--ecs-deploy", help="PyPI's ecs-deploy `ecs` (required unless --noop-plan)")
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--per-action-buckets", action="store_true",
                    help="give the proxy one bucket per operation instead of one per group of operations")
    ap.add_argument("--scale", type=ecs_throttle_proxy.positive, default=1.0,
                    help="the proxy's buckets are this many times ECS's (0.5: every bucket halved)")
    ap.add_argument("--noop-plan", type=int, metavar="N",
                    help="instead: plan a converged fleet of N services with one ECR repository each, through the proxy")
    args = ap.parse_args()
    if args.noop_plan:
        return noop_plan(args)
    if not args.ecs_deploy:
        ap.error("--ecs-deploy is required (unless --noop-plan)")

    # moto's recorder writes its file in the working directory: keep it out of the repository.
    moto, endpoint = start_moto(args.workdir)
    proxy = None
    try:
        subnet, sg = network(endpoint)
        ecs = moto_world.client("ecs", endpoint)
        ecs.create_cluster(clusterName=CLUSTER)
        ecr = moto_world.client("ecr", endpoint)
        digests = {}
        for r in range(5):
            ecr.create_repository(repositoryName=f"mcp/repo-{r}")
            for tag in ("v1", "v2"):
                repo = f"mcp/repo-{r}"
                digests[repo, moto_world.push(ecr, repo, tag, ["amd64", "arm64"])] = tag
                # An image may be pinned by its index's digest or by one platform's manifest digest.
                index = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": tag}])["images"][0]
                for m in json.loads(index["imageManifest"]).get("manifests", []):
                    digests[repo, m["digest"]] = tag
        sm = moto_world.client("secretsmanager", endpoint)
        for s in range(3):
            sm.create_secret(Name=f"bench/secret-{s}", SecretString="x")

        os.makedirs(f"{args.workdir}/m1", exist_ok=True)
        os.makedirs(f"{args.workdir}/m2", exist_ok=True)
        fleet = subprocess.run([args.fleet_gen, str(args.services), "5", "3"], check=True, capture_output=True, text=True).stdout
        fleet = fleet.replace("subnet-0abc1234", subnet).replace("sg-0abc1234", sg)
        open(f"{args.workdir}/m1/fleet.yaml", "w").write(fleet)
        # The same fleet with the first M services on tag v2.
        docs = fleet.split("---\n")
        for i in range(1, args.changed + 1):
            docs[i] = docs[i].replace(":v1\n", ":v2\n")
        open(f"{args.workdir}/m2/fleet.yaml", "w").write("---\n".join(docs))
        names = [f"svc-{i:05}" for i in range(args.changed)]
        changed = set(names)
        registry = f"{moto_world.client('sts', endpoint).get_caller_identity()['Account']}.dkr.ecr.{REGION}.amazonaws.com"

        def mcpfleet(path, via=endpoint):
            """(seconds, JSON document or None, failure or None, stderr lines showing an error or throttling)."""
            t = time.monotonic()
            p = subprocess.run([args.mcpfleet, "--backend", "aws", "apply", "-f", path, "-o", "json"],
                               env=aws_env(via), capture_output=True, text=True)
            secs = time.monotonic() - t
            try:
                doc = json.loads(p.stdout)
            except ValueError:
                doc = None
            failure = None
            if p.returncode != 0 or doc is None:
                failure = f"exit {p.returncode}: {last_line(p.stderr)}"
            return secs, doc, failure, shown_errors(p.stderr)

        def ecs_deploy_all(tag, via):
            """M sequential `ecs deploy` runs to `tag`: (seconds, [(service, exit code, last stderr line)])."""
            failures = []
            t = time.monotonic()
            for i, name in enumerate(names):
                p = subprocess.run([args.ecs_deploy, "deploy", CLUSTER, name, "--image", name, f"{registry}/mcp/repo-{i % 5}:{tag}",
                                    "--timeout", "-1"], env=aws_env(via), capture_output=True, text=True)
                if p.returncode != 0:
                    failures.append((name, p.returncode, last_line(p.stderr)))
            return time.monotonic() - t, failures

        def mcpfleet_failures(doc, failure):
            bad = [] if failure is None else [failure]
            if doc is not None:
                bad += [f"{s['name']}: {s['outcome']} {s.get('message', '')}".strip()
                        for s in doc["services"] if s["name"] in changed and s["outcome"] != "updated"]
            return bad

        recorder(endpoint, "start-recording")
        _, _, failure, _ = mcpfleet(f"{args.workdir}/m1")
        assert failure is None, failure
        recorder(endpoint, "reset-recording")
        _, doc, failure, _ = mcpfleet(f"{args.workdir}/m1")
        noop = operations(endpoint)
        assert failure is None and all(s["outcome"] == "unchanged" for s in doc["services"]), (failure, doc)
        print(f"no-op apply of {args.services} services: {sum(noop.values())} requests {noop}; "
              f"writes {sum(v for k, v in noop.items() if k in WRITES)}")

        results = {}  # (setup, tool) -> dict

        # Round 1: raw moto, requests counted by moto's recorder.
        print("\n== raw moto (no rate limits; requests counted by moto's recorder) ==")
        secs, doc, failure, _ = mcpfleet(f"{args.workdir}/m2")
        change = operations(endpoint)
        bad = mcpfleet_failures(doc, failure)
        done = on_tag(ecs, names, "v2", digests)
        recorder(endpoint, "reset-recording")
        updated = sum(1 for s in (doc or {}).get("services", []) if s["outcome"] == "updated")
        print(f"mcpfleet apply changing {updated} services: {secs:.2f} s, {sum(change.values())} requests {change}")
        print(f"  failures: {len(bad)} {bad[:3]}; services on v2 afterwards: {done}/{args.changed}")
        results["raw", "mcpfleet"] = dict(secs=secs, requests=sum(change.values()), throttled=None, failed=len(bad), done=done)

        secs_ecs, failures = ecs_deploy_all("v1", endpoint)
        ecs_ops = operations(endpoint)
        done = on_tag(ecs, names, "v1", digests)
        recorder(endpoint, "reset-recording")
        print(f"{args.changed} sequential ecs deploy runs: {secs_ecs:.2f} s, {sum(ecs_ops.values())} requests {ecs_ops}")
        print(f"  failed runs: {len(failures)}; services on v1 afterwards: {done}/{args.changed}")
        for name, rc, line in failures:
            print(f"  {name}: exit {rc}: {line}")
        results["raw", "ecs-deploy"] = dict(secs=secs_ecs, requests=sum(ecs_ops.values()), throttled=None,
                                            failed=len(failures), done=done)

        # Back to the state before round 1: the M services under mcpfleet, on v1 (straight to moto, not counted).
        _, doc, failure, _ = mcpfleet(f"{args.workdir}/m1")
        assert failure is None and not mcpfleet_failures(doc, None), (failure, mcpfleet_failures(doc, None))
        assert on_tag(ecs, names, "v1", digests) == args.changed

        # Round 2: the same through ECS's token buckets.
        proxy = ecs_throttle_proxy.start(endpoint, per_action=args.per_action_buckets, scale=args.scale)
        kind = "one bucket per operation" if args.per_action_buckets else "one bucket per group of operations"
        if args.scale != 1:
            kind += f", every bucket x{args.scale}"
        print(f"\n== moto behind ECS's token buckets ({kind}; requests counted by the proxy) ==")
        recorder(endpoint, "reset-recording")
        proxy.reset()
        secs, doc, failure, shown = mcpfleet(f"{args.workdir}/m2", proxy.url)
        counts = proxy.counts()
        forwarded = operations(endpoint)
        bad = mcpfleet_failures(doc, failure)
        done = on_tag(ecs, names, "v2", digests)
        recorder(endpoint, "reset-recording")
        req, thr = sum(counts["requests"].values()), sum(counts["throttled"].values())
        own = sum((doc or {}).get("apiCalls", {}).get("calls", {}).values())
        print(f"mcpfleet apply: {secs:.2f} s, {req} requests received, {thr} throttled {fmt_ops(counts['throttled'])}")
        print(f"  received {fmt_ops(counts['requests'])}")
        print(f"  forwarded to moto (its recorder): {sum(forwarded.values())}; mcpfleet's own count of its requests: {own}")
        print(f"  failures: {len(bad)} {bad[:3]}; services on v2 afterwards: {done}/{args.changed}")
        print(f"  stderr lines showing an error or throttling: {len(shown)} {shown[:3]}; mcpfleet's count of throttles "
              f"{fmt_ops((doc or {}).get('apiCalls', {}).get('throttled', {}))}, buckets paced down to (per s) "
              f"{fmt_ops((doc or {}).get('apiCalls', {}).get('pacedTo', {}))}")
        results["proxy", "mcpfleet"] = dict(secs=secs, requests=req, throttled=thr, failed=len(bad), done=done)

        proxy.reset()
        secs_ecs, failures = ecs_deploy_all("v1", proxy.url)
        counts = proxy.counts()
        forwarded = operations(endpoint)
        done = on_tag(ecs, names, "v1", digests)
        req, thr = sum(counts["requests"].values()), sum(counts["throttled"].values())
        print(f"{args.changed} sequential ecs deploy runs: {secs_ecs:.2f} s, {req} requests received, {thr} throttled "
              f"{fmt_ops(counts['throttled'])}")
        print(f"  received {fmt_ops(counts['requests'])}")
        print(f"  forwarded to moto (its recorder): {sum(forwarded.values())}")
        print(f"  failed runs: {len(failures)}; services on v1 afterwards: {done}/{args.changed}")
        for name, rc, line in failures:
            print(f"  {name}: exit {rc}: {line}")
        results["proxy", "ecs-deploy"] = dict(secs=secs_ecs, requests=req, throttled=thr, failed=len(failures), done=done)

        # Summary.
        print(f"\n== summary: {args.changed}-service image change, mcpfleet (one apply) vs {args.changed} x ecs deploy ==")
        head = f"{'mcpfleet':>10}{'ecs-deploy':>12}{'ratio':>7}   "
        print(f"{'':<24}{'   raw moto':<32}{'   moto behind ECS token buckets':<32}")
        print(f"{'':<24}" + head + head)

        def row(label, key, fmt, ratio=True):
            cells = []
            for setup in ("raw", "proxy"):
                m, e = results[setup, "mcpfleet"][key], results[setup, "ecs-deploy"][key]
                ratio_cell = f"{e / m:.1f}x" if ratio and m and e is not None else ""
                show = lambda v: "-" if v is None else fmt.format(v)  # noqa: E731
                cells.append(f"{show(m):>10}{show(e):>12}{ratio_cell:>7}   ")
            print(f"{label:<24}" + "".join(cells))

        row("wall time (s)", "secs", "{:.1f}")
        row("requests", "requests", "{}")
        row("throttled", "throttled", "{}", ratio=False)
        row("failed deploys", "failed", "{}", ratio=False)
        row(f"services done (of {args.changed})", "done", "{}", ratio=False)
        print("ratio: ecs-deploy / mcpfleet")
    finally:
        if proxy is not None:
            proxy.close()
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()

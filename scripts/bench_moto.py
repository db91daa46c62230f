#!/usr/bin/env python3
"""Benchmark the aws backend against moto's server, side by side with PyPI's ecs-deploy.

  bench_moto.py --mcpfleet target/release/mcpfleet --fleet-gen target/release/examples/fleet_gen \
                --ecs-deploy PATH/TO/ecs  [--services 100] [--changed 50]

Reports (requests are counted by moto's request recorder, so both tools are measured the same way):
  1. requests of a no-op `mcpfleet apply` over N converged services;
  2. requests and wall time of one `mcpfleet apply` that changes the image tag of M services;
  3. requests and wall time of M sequential `ecs deploy CLUSTER SERVICE --image …` runs doing the same change.
Run through `scripts/bench.sh moto`, which builds the binaries and installs ecs-deploy in a scratch venv.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import moto_world  # noqa: E402  (seeding helpers shared with the tests)

REGION = "us-east-1"


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpfleet", required=True)
    ap.add_argument("--fleet-gen", required=True)
    ap.add_argument("--ecs-deploy", required=True)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MOTO_ENABLE_RECORDING="True")
    env.pop("MOTO_ECS_SERVICE_RUNNING", None)
    os.makedirs(args.workdir, exist_ok=True)
    # moto's recorder writes its file in the working directory: keep it out of the repository.
    moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            env=env, cwd=args.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        ec2 = moto_world.client("ec2", endpoint)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="bench", Description="bench", VpcId=vpc)["GroupId"]
        moto_world.client("ecs", endpoint).create_cluster(clusterName="bench")
        ecr = moto_world.client("ecr", endpoint)
        for r in range(5):
            ecr.create_repository(repositoryName=f"mcp/repo-{r}")
            for tag in ("v1", "v2"):
                moto_world.push(ecr, f"mcp/repo-{r}", tag, ["amd64", "arm64"])
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

        aws_env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                       AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true")

        def mcpfleet(path):
            t = time.monotonic()
            out = subprocess.run([args.mcpfleet, "--backend", "aws", "apply", "-f", path, "-o", "json"],
                                 env=aws_env, check=True, capture_output=True, text=True).stdout
            return time.monotonic() - t, json.loads(out)

        recorder(endpoint, "start-recording")
        mcpfleet(f"{args.workdir}/m1")
        recorder(endpoint, "reset-recording")
        _, doc = mcpfleet(f"{args.workdir}/m1")
        noop = operations(endpoint)
        assert all(s["outcome"] == "unchanged" for s in doc["services"]), doc
        print(f"no-op apply of {args.services} services: {sum(noop.values())} requests {noop}; "
              f"writes {sum(v for k, v in noop.items() if k in WRITES)}")

        secs, doc = mcpfleet(f"{args.workdir}/m2")
        change = operations(endpoint)
        updated = sum(1 for s in doc["services"] if s["outcome"] == "updated")
        print(f"mcpfleet apply changing {updated} services: {secs:.2f} s, {sum(change.values())} requests {change}")

        registry = f"{moto_world.client('sts', endpoint).get_caller_identity()['Account']}.dkr.ecr.{REGION}.amazonaws.com"
        t = time.monotonic()
        for i in range(args.changed):
            name = f"svc-{i:05}"
            subprocess.run([args.ecs_deploy, "deploy", "bench", name, "--image", name, f"{registry}/mcp/repo-{i % 5}:v1",
                            "--timeout", "-1"], env=aws_env, check=True, capture_output=True)
        secs_ecs = time.monotonic() - t
        ecs = operations(endpoint)
        print(f"{args.changed} sequential ecs deploy runs: {secs_ecs:.2f} s, {sum(ecs.values())} requests {ecs}")
        print(f"ratio ecs-deploy/mcpfleet: requests {sum(ecs.values()) / max(1, sum(change.values())):.1f}x, "
              f"wall time {secs_ecs / max(secs, 1e-9):.1f}x")
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()

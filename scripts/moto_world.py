#!/usr/bin/env python3
"""Seed a moto server with the example fleet's AWS world, or dump what mcpfleet made of it.

  moto_world.py seed --endpoint URL   create VPC/subnets/security group, the ECS cluster, ECR repositories with
                                      images (multi-arch and amd64-only OCI indexes), the secrets and the load
                                      balancers below (documents.yaml exposes `mcp-documents`); print JSON
  moto_world.py dump --endpoint URL   print the ECS services and task definitions (with tags) as JSON
  moto_world.py ecs --endpoint URL OPERATION JSON
                                      call one ECS operation (boto3 snake_case name, JSON keyword arguments), e.g.
                                      to put a service in a state mcpfleet would not; print its answer
  moto_world.py aas --endpoint URL OPERATION JSON
                                      the same for Application Auto Scaling (namespace `ecs`): read or change
                                      scalable targets and scaling policies behind mcpfleet's back
  moto_world.py secretsmanager --endpoint URL OPERATION JSON
                                      the same for Secrets Manager, e.g. `put_secret_value` to rotate a secret
                                      (AWSCURRENT moves to the new version, AWSPREVIOUS to the old one)
  moto_world.py s3|dynamodb --endpoint URL OPERATION JSON
                                      the same for S3 and DynamoDB: buckets and objects of published fleets, the
                                      lease table
  moto_world.py record --endpoint URL start|ops|by-key
                                      start moto's request recorder afresh (the server runs with
                                      MOTO_ENABLE_RECORDING=True), or print the requests recorded since, by operation
                                      (S3's REST requests as `METHOD PATH`), or those per access key id

The load balancers `seed` makes, in the seeded VPC (under "loadBalancers" in its JSON: their ARNs and the ALB's DNS
name): an ALB `mcp-alb` (idle timeout 120 s) in both subnets with an HTTP listener forwarding to the `ip` target
group `mcp-documents` (health check /ready, deregistration delay 30 s), a second `ip` target group
`mcp-documents-green` behind a listener on port 8080, and an `instance` target group `legacy-instances` without a
listener.

Used by the integration tests (tests/common/aws_lab.rs); it expects a fresh server for `seed`.
"""
import argparse
import base64
import collections
import hashlib
import json
import re
import sys
import urllib.parse
import urllib.request

import boto3

REGION = "us-east-1"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

# repository, tag, platforms
IMAGES = [
    ("mcp/documents", "v1.4.2", ["amd64", "arm64"]),
    ("mcp/database", "v2.0.1", ["amd64"]),
    ("mcp/search", "v0.9.0", ["amd64", "arm64"]),
    ("mcp/search", "v0.9.1", ["amd64", "arm64"]),
]
SECRETS = {
    "prod/mcp/openai-key": '{"api_key": "not-a-real-key"}',
    "prod/mcp/db-password": "not-a-real-password",
    "prod/mcp/search-api-key": "not-a-real-key",
}


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def fake_digest(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def push(ecr, repository, tag, archs):
    """Pushes one manifest per architecture, then an OCI index listing them under `tag`."""
    entries = []
    for arch in archs:
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": fake_digest(f"{repository}:{tag}:{arch}:config"), "size": 512},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": fake_digest(f"{repository}:{tag}:{arch}:layer"), "size": 4096}],
        })
        # moto derives digests from layers, or for an index from a random number; pass the real one, as a
        # registry would compute it, so digests are stable and distinct.
        out = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageManifestMediaType=OCI_MANIFEST,
                            imageDigest=content_digest(manifest))
        entries.append({"mediaType": OCI_MANIFEST, "digest": out["image"]["imageId"]["imageDigest"],
                        "size": len(manifest), "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    out = ecr.put_image(repositoryName=repository, imageManifest=index, imageTag=tag,
                        imageManifestMediaType=OCI_INDEX, imageDigest=content_digest(index))
    return out["image"]["imageId"]["imageDigest"]


def content_digest(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def seed(endpoint):
    ec2 = client("ec2", endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
               for cidr in ("10.0.1.0/24", "10.0.2.0/24")]
    sg = ec2.create_security_group(GroupName="mcp", Description="mcp fleet", VpcId=vpc)["GroupId"]
    client("ecs", endpoint).create_cluster(clusterName="mcp-prod")

    ecr = client("ecr", endpoint)
    account = client("sts", endpoint).get_caller_identity()["Account"]
    images = {}
    for repository in sorted({r for r, _, _ in IMAGES}):
        ecr.create_repository(repositoryName=repository)
    for repository, tag, archs in IMAGES:
        digest = push(ecr, repository, tag, archs)
        images[f"{repository}:{tag}"] = {"digest": digest, "platforms": [f"linux/{a}" for a in archs]}

    sm = client("secretsmanager", endpoint)
    secrets = {name: sm.create_secret(Name=name, SecretString=value)["ARN"] for name, value in SECRETS.items()}
    return {
        "subnets": subnets, "securityGroups": [sg], "account": account,
        "registry": f"{account}.dkr.ecr.{REGION}.amazonaws.com", "images": images, "secrets": secrets,
        "loadBalancers": load_balancers(endpoint, vpc, subnets),
    }


def dump(endpoint):
    ecs = client("ecs", endpoint)
    arns = ecs.list_services(cluster="mcp-prod").get("serviceArns", [])
    services = []
    for i in range(0, len(arns), 10):
        services += ecs.describe_services(cluster="mcp-prod", services=arns[i:i + 10], include=["TAGS"])["services"]
    families = {}
    for arn in ecs.list_task_definitions()["taskDefinitionArns"]:
        out = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        td = out["taskDefinition"]
        td["tags"] = out.get("tags", [])
        families.setdefault(td["family"], []).append(td)
    return {"services": {s["serviceName"]: s for s in services}, "taskDefinitions": families}


def load_balancers(endpoint, vpc, subnets):
    elb = client("elbv2", endpoint)
    lb = elb.create_load_balancer(Name="mcp-alb", Subnets=subnets, Type="application",
                                  Scheme="internal")["LoadBalancers"][0]
    elb.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"],
                                        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "120"}])
    ip = elb.create_target_group(Name="mcp-documents", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip",
                                 HealthCheckPath="/ready")["TargetGroups"][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(TargetGroupArn=ip,
                                       Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])
    instance = elb.create_target_group(Name="legacy-instances", Protocol="HTTP", Port=80, VpcId=vpc,
                                       TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": ip}])
    # A second `ip` group on its own listener: what a service moves to when it switches target groups.
    green = elb.create_target_group(Name="mcp-documents-green", Protocol="HTTP", Port=8080, VpcId=vpc,
                                    TargetType="ip", HealthCheckPath="/ready")["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=8080,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": green}])
    return {"loadBalancer": {"arn": lb["LoadBalancerArn"], "dnsName": lb["DNSName"]},
            "targetGroups": {"mcp-documents": ip, "mcp-documents-green": green, "legacy-instances": instance}}


def recorder(endpoint, action):
    method = "GET" if action == "download-recording" else "POST"
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/recorder/{action}", method=method)) as r:
        return r.read().decode()


def record(endpoint, what):
    """`start`: reset and start recording; `ops`: requests recorded since, by operation (X-Amz-Target or Action);
    `by-key`: the same per access key id of the request's signature (one per process in the tests)."""
    if what == "start":
        recorder(endpoint, "reset-recording")
        recorder(endpoint, "start-recording")
        return {}
    counts = collections.defaultdict(collections.Counter)
    lines = recorder(endpoint, "download-recording").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            # A request being recorded while the recording is read: its line is not whole yet.
            if i == len(lines) - 1:
                continue
            raise
        headers = entry.get("headers", {})
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        key = re.search(r"Credential=([^/]+)/", auth)
        counts[key.group(1) if key else "-"][operation(entry, headers)] += 1
    if what == "by-key":
        return {k: dict(c) for k, c in counts.items()}
    return dict(sum(counts.values(), collections.Counter()))


def operation(entry, headers):
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target")
    if target:
        return target.split(".")[-1]
    body = entry.get("body") or ""
    # Query-protocol requests (ELBv2, EC2) carry the action in a form body, which the recorder keeps in
    # base64 when it arrived as bytes.
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    m = re.search(r"Action=([A-Za-z]+)", body if isinstance(body, str) else "")
    # S3 speaks REST: the method and path say what was asked.
    return m.group(1) if m else f"{entry.get('method', '?')} {urllib.parse.urlsplit(entry.get('url', '?')).path}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["seed", "dump", "ecs", "aas", "secretsmanager", "s3", "dynamodb", "record"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("args", nargs="*")
    args = parser.parse_intermixed_args()
    try:
        if args.command == "seed":
            out = seed(args.endpoint)
        elif args.command == "dump":
            out = dump(args.endpoint)
        elif args.command in ("ecs", "aas", "secretsmanager", "s3", "dynamodb"):
            op, kwargs = args.args
            service = {"aas": "application-autoscaling"}.get(args.command, args.command)
            out = getattr(client(service, args.endpoint), op)(**json.loads(kwargs))
            out.pop("ResponseMetadata", None)
        else:
            out = record(args.endpoint, *args.args)
    except Exception as e:  # one clear line for the test's failure message
        print(f"moto_world.py {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

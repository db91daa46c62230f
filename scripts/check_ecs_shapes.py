#!/usr/bin/env python3
"""Check rendered ECS documents against the ECS API's own input shapes, as botocore knows them.

Usage: check_ecs_shapes.py [FILE|-]   (default: standard input; FILE is the output of `mcpfleet render`)

Input: {"services": [{"name", "cluster", "registerTaskDefinition": {...}, "createService": {...},
                      "autoscaling"?: {"registerScalableTarget": {...}, "putScalingPolicies": [{...}]}}]}
Each registerTaskDefinition is validated against the RegisterTaskDefinition input shape and each createService
against the CreateService input shape (and an autoscaled service's documents against Application Auto Scaling's
RegisterScalableTarget and PutScalingPolicy input shapes, naming the service's own resource): unknown parameters, wrong types, missing required members, values
outside an enum and values (or string and list lengths) outside the model's min/max are all problems. So are an empty services list, a missing or unexpected key in a service entry,
and documents that disagree with their entry (family and serviceName must equal name, cluster must match).
Prints one line per problem, naming the service. Exit 0 when there is none, 1 otherwise. No network access:
the service model ships with botocore.
"""
import json
import sys

import botocore.session
from botocore.validate import ParamValidator

ENTRY_KEYS = {"name": str, "cluster": str, "registerTaskDefinition": dict, "createService": dict}
OPTIONAL_KEYS = {"autoscaling": dict}
OPERATIONS = {"registerTaskDefinition": "RegisterTaskDefinition", "createService": "CreateService"}
AUTOSCALING_KEYS = {"registerScalableTarget": "RegisterScalableTarget", "putScalingPolicies": "PutScalingPolicy"}


def check_limits(value, shape, path):
    """Return the enum and min/max problems of value under shape, which ParamValidator does not check.

    botocore's validator knows types, required members and minimums only; the service model also carries each
    string's enum and the maximums, and ECS refuses a value outside them.
    """
    problems = []
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, member in shape.members.items():
            if key in value:
                problems += check_limits(value[key], member, f"{path}.{key}" if path else key)
    elif shape.type_name == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            problems += check_limits(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            problems += check_limits(key, shape.key, f"{path} (key {key!r})")
            problems += check_limits(item, shape.value, f"{path}.{key}")
    enum = getattr(shape, "enum", None)
    if enum and isinstance(value, str) and value not in enum:
        problems.append(f"{path}: {value!r} is not one of {', '.join(enum)}")
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if isinstance(value, bool):
        return problems
    if isinstance(value, (int, float)) and shape.type_name in ("integer", "long", "float", "double"):
        measure, what = value, "value"
    elif isinstance(value, (str, list, dict)) and shape.type_name in ("string", "list", "map"):
        measure, what = len(value), "length"
    else:
        return problems
    # Minimums are ParamValidator's already; reporting them twice would only add noise.
    if high is not None and measure > high:
        problems.append(f"{path}: {what} {measure} is above the maximum {high}")
    return problems


def against_model(label, params, model, operation, validator):
    """Return the problems of params as the input of operation in model, each line starting with label."""
    shape = model.operation_model(operation).input_shape
    report = validator.validate(params, shape)
    problems = report.generate_report().splitlines() if report.has_errors() else []
    problems += check_limits(params, shape, "")
    return [f"{label}: {line}" for line in problems]


def check_autoscaling(name, entry, validator):
    """Return the problems of an entry's Application Auto Scaling documents, one line each."""
    scaling = entry["autoscaling"]
    if not isinstance(scaling, dict):
        return [f"{name}: autoscaling must be an object"]
    problems = [f"{name}: autoscaling: unexpected key {key!r}" for key in sorted(set(scaling) - set(AUTOSCALING_KEYS))]
    model = botocore.session.get_session().get_service_model("application-autoscaling")
    resource = f"service/{entry.get('cluster')}/{entry.get('name')}"
    documents = [("registerScalableTarget", scaling.get("registerScalableTarget"))]
    policies = scaling.get("putScalingPolicies")
    if not isinstance(policies, list) or not policies:
        problems.append(f"{name}: autoscaling.putScalingPolicies must be a non-empty list")
        policies = []
    documents += [(f"putScalingPolicies[{i}]", p) for i, p in enumerate(policies)]
    for path, params in documents:
        operation = AUTOSCALING_KEYS[path.split("[")[0]]
        if not isinstance(params, dict):
            problems.append(f"{name}: autoscaling.{path} must be an object")
            continue
        problems += against_model(f"{name}: autoscaling.{path}", params, model, operation, validator)
        if params.get("ResourceId") != resource:
            problems.append(f"{name}: autoscaling.{path}.ResourceId {params.get('ResourceId')!r} is not {resource!r}")
    return problems


def check(payload):
    """Return the list of problems in a rendered payload, one line each."""
    if not isinstance(payload, dict) or not isinstance(payload.get("services"), list):
        return ['(input): expected an object {"services": [...]}']
    unexpected = sorted(set(payload) - {"services"})
    problems = [f"(input): unexpected key {key!r}" for key in unexpected]
    if not payload["services"]:
        problems.append("(input): services is empty")

    model = botocore.session.get_session().get_service_model("ecs")
    validator = ParamValidator()
    for index, entry in enumerate(payload["services"]):
        if not isinstance(entry, dict):
            problems.append(f"services[{index}]: expected an object")
            continue
        name = entry.get("name") if isinstance(entry.get("name"), str) else f"services[{index}]"
        for key, kind in ENTRY_KEYS.items():
            if key not in entry:
                problems.append(f"{name}: missing {key}")
            elif not isinstance(entry[key], kind):
                problems.append(f"{name}: {key} must be a {kind.__name__ if kind is str else 'object'}")
        extra = sorted(set(entry) - set(ENTRY_KEYS) - set(OPTIONAL_KEYS))
        problems += [f"{name}: unexpected key {key!r}" for key in extra]
        if "autoscaling" in entry:
            problems += check_autoscaling(name, entry, validator)

        for key, operation in OPERATIONS.items():
            params = entry.get(key)
            if not isinstance(params, dict):
                continue
            problems += against_model(f"{name}: {key}", params, model, operation, validator)

        task_definition, service = entry.get("registerTaskDefinition"), entry.get("createService")
        if isinstance(task_definition, dict) and task_definition.get("family") != entry.get("name"):
            problems.append(f"{name}: registerTaskDefinition.family {task_definition.get('family')!r} is not the name")
        if isinstance(service, dict):
            if service.get("serviceName") != entry.get("name"):
                problems.append(f"{name}: createService.serviceName {service.get('serviceName')!r} is not the name")
            if service.get("cluster") != entry.get("cluster"):
                problems.append(f"{name}: createService.cluster {service.get('cluster')!r} is not the cluster")
    return problems


def main(argv):
    if len(argv) > 1 or (argv and argv[0] in ("-h", "--help")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    source = argv[0] if argv else "-"
    try:
        if source == "-":
            payload = json.load(sys.stdin)
        else:
            with open(source, encoding="utf-8") as f:
                payload = json.load(f)
    except (OSError, ValueError) as err:
        print(f"{source}: cannot read JSON: {err}")
        return 1
    problems = check(payload)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Validate manifest files against the committed JSON Schema, as an editor would.

Usage: check_manifest_schema.py FILE...  (every YAML document of every file is checked)
Exit 0 when all documents are valid, 1 otherwise.
"""
import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "mcpfleet.v1alpha1.schema.json"


def explain(errors):
    """Yield the errors worth reading.

    The root schema is anyOf(FleetDefaults, McpService), so a wrong document fails with one opaque "is not valid
    under any of the given schemas". When one branch fails only deeper than its `kind` (the document is of that
    kind), that branch's own errors are what an editor would show, one per field.
    """
    for err in errors:
        if err.validator != "anyOf" or err.absolute_path:
            yield err
            continue
        branches = {}
        for sub in err.context:
            branches.setdefault(sub.schema_path[0], []).append(sub)
        right_kind = [subs for subs in branches.values() if not any(list(s.path) == ["kind"] for s in subs)]
        if len(right_kind) == 1:
            yield from right_kind[0]
        else:
            yield err


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 1
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    problems = 0
    for name in argv:
        with open(name, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        if not docs:
            print(f"{name}: no documents")
            problems += 1
        for i, doc in enumerate(docs):
            for err in explain(validator.iter_errors(doc)):
                path = ".".join(str(p) for p in err.absolute_path) or "(document)"
                print(f"{name}: document {i + 1}: {path}: {err.message}")
                problems += 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Validate a docker-compose file against the Compose Specification JSON Schema.

Usage: check_compose.py FILE   (FILE may be - for standard input)

The schema is the official one from the compose-spec project (Apache-2.0), vendored at
tests/fixtures/compose-spec.json; it is draft-07. Each error is printed with the JSON path of the offending
value. Exit 0 when the file is valid, 1 when it is not (or cannot be read), 2 on wrong usage.
"""
import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"


def json_path(parts):
    """Render a jsonschema error path as $.services.documents.ports[0]."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def main(argv):
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name = argv[0]
    try:
        text = sys.stdin.read() if name == "-" else pathlib.Path(name).read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as err:
        print(f"{name}: cannot read: {err}")
        return 1
    if not isinstance(document, dict):
        print(f"{name}: $: a compose file must be a mapping, got {type(document).__name__}")
        return 1

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    for err in errors:
        print(f"{name}: {json_path(err.absolute_path)}: {err.message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

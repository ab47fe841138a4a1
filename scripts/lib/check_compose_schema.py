"""Validates a compose file against the Compose Specification's JSON schema — the one Debian's
docker-compose package ships (compose/config/compose_spec.json) — after YAML anchors and merge
keys are resolved, as an engine would read it. Exit 1 with every violation listed.

    python3 check_compose_schema.py compose/docker-compose.yml
"""
import json
import os
import sys

import jsonschema
import yaml

SCHEMAS = ["/usr/lib/python3/dist-packages/compose/config/compose_spec.json"]


def main() -> int:
    path = sys.argv[1]
    schema_path = next((p for p in SCHEMAS if os.path.exists(p)), None)
    if schema_path is None:
        print("the compose-spec schema is missing (apt-get install docker-compose)", file=sys.stderr)
        return 1
    with open(schema_path) as f:
        schema = json.load(f)
    with open(path) as f:
        document = yaml.safe_load(f)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        print(f"{path}: {where}: {e.message}", file=sys.stderr)
    if errors:
        return 1
    print(f"{path}: valid against {os.path.basename(schema_path)} ({len(document.get('services', {}))} services)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

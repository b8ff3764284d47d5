"""Calls two tools through a client generated from the router's OpenAPI document.

Usage: rest_client_check.py PACKAGE_DIR BASE_URL

PACKAGE_DIR holds the package `openapi-python-client generate` wrote (its
parent goes on sys.path). Each tool is called through the generated module of
its operation (`api/<tag>/<operation>.py`), with the body built by the
generated model class; prints one JSON line per call and exits 1 on a wrong
answer.
"""

import importlib
import json
import sys
import typing
from pathlib import Path


def main() -> int:
    package_dir, base_url = Path(sys.argv[1]), sys.argv[2]
    sys.path.insert(0, str(package_dir.parent))
    package = importlib.import_module(package_dir.name)
    client = package.Client(base_url=base_url, raise_on_unexpected_status=True)

    def operation(tag: str, name: str):
        return importlib.import_module(f"{package_dir.name}.api.{tag}.{name}")

    def call(module, arguments: dict):
        hints = typing.get_type_hints(module.sync_detailed)
        # The body is optional (an empty body is no arguments): the
        # annotation is the generated model or Unset.
        body_type = next(
            t for t in (typing.get_args(hints["body"]) or (hints["body"],)) if hasattr(t, "from_dict")
        )
        body = body_type.from_dict(arguments)
        response = module.sync_detailed(client=client, body=body)
        return response.status_code, json.loads(response.content)

    failures = 0
    for name, arguments, check in [
        ("calculator_add", {"a": 40, "b": 2}, lambda r: r["result"] == {"sum": 42}),
        (
            "calculator_divide",
            {"dividend": 7, "divisor": 2},
            lambda r: r["result"] == {"quotient": 3, "remainder": 1},
        ),
    ]:
        status, answer = call(operation("calculator", name), arguments)
        ok = status == 200 and check(answer)
        print(json.dumps({"tool": name, "status": int(status), "ok": ok, "answer": answer}))
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

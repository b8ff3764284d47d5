"""Schemathesis hooks for the router's REST API (loaded with SCHEMATHESIS_HOOKS).

The API documents 502 (the tool or its connector failed), 503 (the connector is
down, or a bound was hit) and 504 (the connector's deadline) as answers a client
must handle: any other 5xx is a bug of the router.
"""

import schemathesis

DOCUMENTED = (502, 503, 504)


@schemathesis.check
def only_documented_server_errors(ctx, response, case):
    if response.status_code >= 500 and response.status_code not in DOCUMENTED:
        raise AssertionError(
            f"undocumented server error {response.status_code} for "
            f"{case.method} {case.formatted_path}: {response.text[:500]}"
        )

"""schemathesis against the served /openapi.json: no 5xx, and every answer fits the document.

Each operation gets a bounded number of generated requests (with a key for all tenants, so
they reach the handlers). The cases come from schemathesis' hypothesis strategies, driven by
plain pytest parametrisation.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from http_server_support import Server
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from auditkeep.server.openapi import OPERATIONS, openapi_document

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The live tail never ends by itself: it is exercised in test_server_stream instead.
SKIP = {("get", "/v1/stream")}


def test_served_document_is_the_one_tested(server: Server) -> None:
    with server.client() as c:
        assert c.get("/openapi.json").json() == openapi_document()


@pytest.mark.parametrize(
    ("method", "path"), [(op.method, op.path) for op in OPERATIONS if (op.method, op.path) not in SKIP]
)
def test_operation_conforms(server: Server, method: str, path: str) -> None:
    operation = SCHEMA[path][method.upper()]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.admin}"},
            checks=CHECKS,
            timeout=30,
        )

    run()

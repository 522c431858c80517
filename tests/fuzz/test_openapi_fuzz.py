"""Schemathesis against every operation of the gateway's own OpenAPI document, over real HTTP.

For each operation, valid and invalid requests (authenticated as a real merchant) must never
produce a 5xx, every error must be ``application/problem+json`` with a ``code``, and every
response must match what ``/openapi.json`` promises (status code, content type, headers, body
schema). Failures are collected per operation and reported together, each with a curl command
that reproduces it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app
from tests.conftest import make_settings
from tests.fuzz.live import LiveGateway

# Per operation and generation mode. ~17 operations x 2 modes x 25 examples runs in well under
# a minute here; raise it locally for a deeper search.
MAX_EXAMPLES = int(os.environ.get("MOMO_FUZZ_EXAMPLES", "25"))

# The document the app serves at /openapi.json, built without starting anything, so that the
# operations can be listed at collection time (one test per operation).
SCHEMA_DOCUMENT = create_app(make_settings("sqlite+aiosqlite:///:memory:")).openapi()
SCHEMA = schemathesis.openapi.from_dict(SCHEMA_DOCUMENT)
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}


def problem_json_with_code(ctx: Any, response: Any, case: Any) -> bool | None:
    """RFC 9457 with the gateway's stable ``code`` on every 4xx/5xx."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(f"{response.status_code} answered as {content_type!r}")
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not body["code"]:
        raise AssertionError(f"{response.status_code} problem without a code: {body!r}")
    if body.get("status") != response.status_code:
        raise AssertionError(f"problem status {body.get('status')} != {response.status_code}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_json_with_code,
]


def test_the_fuzzed_document_is_the_one_served(live_gateway):
    served = httpx.get(f"{live_gateway.url}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == SCHEMA_DOCUMENT
    assert len(OPERATIONS) >= 10


def fuzz(operation: Any, gateway: LiveGateway, mode: GenerationMode) -> list[str]:
    """Run ``MAX_EXAMPLES`` generated requests; every failed check, with how to reproduce it."""
    failures: dict[str, str] = {}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=gateway.url, headers=gateway.auth, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS, headers=gateway.auth)
        except (AssertionError, BaseExceptionGroup) as failure:
            # One entry per distinct failure, so a report is not a wall of the same line.
            summary = str(failure).strip().splitlines()[0][:200]
            failures.setdefault(
                f"{response.status_code} {summary}",
                f"{case.as_curl_command(headers=gateway.auth, base_url=gateway.url)}\n"
                f"    -> {response.status_code} {response.text[:300]}",
            )

    run()
    return [f"{key}\n  {repro}" for key, repro in failures.items()]


def takes_input(operation: Any) -> bool:
    """Whether there is anything to make invalid (a parameter or a body)."""
    return any(
        len(part)
        for part in (operation.path_parameters, operation.query, operation.headers, operation.body)
    )


CASES = [
    pytest.param(label, mode, id=f"{mode}-{label}")
    for label in sorted(OPERATIONS)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or takes_input(OPERATIONS[label])
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_operation_answers_within_its_contract(label, mode, live_gateway):
    failures = fuzz(OPERATIONS[label], live_gateway, mode)
    assert failures == [], f"{label} ({mode}):\n" + "\n".join(failures)


class _Answer:
    def __init__(self, status_code: int, content_type: str, body: Any) -> None:
        self.status_code = status_code
        self.headers = {"content-type": [content_type]}
        self._body = body

    def json(self) -> Any:
        return self._body


def test_the_problem_check_refuses_what_is_not_a_problem_with_a_code():
    problem = {"type": "t", "title": "Not Found", "status": 404, "code": "not_found"}
    assert (
        problem_json_with_code(None, _Answer(404, "application/problem+json", problem), None)
        is None
    )
    assert problem_json_with_code(None, _Answer(200, "application/json", {}), None) is None
    for answer in (
        _Answer(404, "application/json", problem),
        _Answer(404, "application/problem+json", {**problem, "code": ""}),
        _Answer(404, "application/problem+json", {**problem, "status": 400}),
        _Answer(500, "text/plain", "Internal Server Error"),
    ):
        with pytest.raises(AssertionError):
            problem_json_with_code(None, answer, None)

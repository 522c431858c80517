"""The OpenAPI document is valid, and tells an integrator what each operation really answers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from openapi_spec_validator import validate
from standardwebhooks import Webhook

from app.config import Settings
from app.errors import PROBLEM_TYPE_BASE
from app.main import create_app
from app.openapi import EXAMPLE_WEBHOOK_SECRET, customise_openapi
from app.payments.domain import EventType
from tests.conftest import make_settings

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
REF = "#/components/schemas/"


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test")


def build_app() -> FastAPI:
    app = create_app(
        Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:"),
        providers={},
        background_jobs=False,
    )
    customise_openapi(app)
    return app


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = build_app().openapi()
    return schema


def operations(document: dict[str, Any], section: str = "paths") -> list[tuple[str, str, Any]]:
    return [
        (path, method, item[method])
        for path, item in document.get(section, {}).items()
        for method in HTTP_METHODS
        if method in item
    ]


def all_operations(document: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return operations(document) + operations(document, "webhooks")


def operation_ids(document: dict[str, Any]) -> list[str]:
    return [f"{method} {path}" for path, method, _ in all_operations(document)]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith(REF)
    resolved: dict[str, Any] = document["components"]["schemas"][ref.removeprefix(REF)]
    return resolved


def has_example(document: dict[str, Any], media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    return bool(resolve(document, media.get("schema", {})).get("examples"))


def example_values(document: dict[str, Any], media: dict[str, Any]) -> list[Any]:
    if "example" in media:
        return [media["example"]]
    if media.get("examples"):
        return [example["value"] for example in media["examples"].values()]
    return list(resolve(document, media.get("schema", {})).get("examples", []))


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _path, _method, operation in all_operations(document)]

    assert len(ids) == len(set(ids))


def test_building_the_document_warns_about_nothing(recwarn: pytest.WarningsRecorder) -> None:
    build_app().openapi()

    assert [str(w.message) for w in recwarn.list] == []


@pytest.mark.parametrize("section", ["paths", "webhooks"])
def test_every_operation_has_a_summary_and_a_tag(document: dict[str, Any], section: str) -> None:
    found = operations(document, section)
    assert found

    for path, method, operation in found:
        assert operation.get("summary"), f"{method} {path} has no summary"
        assert operation.get("tags"), f"{method} {path} has no tag"


def test_every_request_body_has_an_example(document: dict[str, Any]) -> None:
    for path, method, operation in all_operations(document):
        body = operation.get("requestBody")
        if body is None:
            continue
        for media_type, media in body["content"].items():
            assert has_example(document, media), f"{method} {path} {media_type}: no example"


def test_every_success_response_has_an_example(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        successes = {code: r for code, r in operation["responses"].items() if code[0] == "2"}
        assert successes, f"{method} {path} documents no success"
        for code, response in successes.items():
            content = response.get("content")
            assert content, f"{method} {path} {code}: no content"
            for media_type, media in content.items():
                assert has_example(document, media), f"{method} {path} {code} {media_type}"


def test_payment_operations_document_their_bodies(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/payments"]["post"]
    created = create["responses"]["201"]["content"]["application/json"]
    body = create["requestBody"]["content"]["application/json"]

    assert created["schema"] == {"$ref": REF + "PaymentOut"}
    assert example_values(document, created)[0]["object"] == "payment"
    assert example_values(document, body)[0]["phone_number"]
    assert "Idempotent-Replayed" in create["responses"]["201"]["headers"]
    idempotency_key = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert idempotency_key["in"] == "header"
    listing = document["paths"]["/v1/payments"]["get"]["responses"]["200"]["content"]
    assert example_values(document, listing["application/json"])[0]["object"] == "list"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500, 503])
def test_every_documented_error_is_problem_json_with_examples(
    document: dict[str, Any], status: int
) -> None:
    checked = 0
    for path, method, operation in operations(document):
        response = operation["responses"].get(str(status))
        if response is None:
            continue
        checked += 1
        content = response.get("content", {})
        assert list(content) == ["application/problem+json"], f"{method} {path} {status}"
        media = content["application/problem+json"]
        assert media["schema"] == {"$ref": REF + "Problem"}
        values = example_values(document, media)
        assert values, f"{method} {path} {status}: no example"
        for value in values:
            assert value["status"] == status
            assert value["type"] == PROBLEM_TYPE_BASE + value["code"]
            assert {"type", "title", "status", "detail", "code"} <= set(value)
    assert checked, f"no operation documents {status}"


def test_v1_errors_name_the_codes_the_readme_promises(document: dict[str, Any]) -> None:
    create = document["paths"]["/v1/payments"]["post"]["responses"]

    def codes(status: int) -> set[str]:
        return set(create[str(status)]["content"]["application/problem+json"]["examples"])

    assert codes(400) == {"malformed_json", "invalid_idempotency_key"}
    assert codes(409) == {"order_already_has_payment", "idempotency_request_in_progress"}
    assert {"validation_error", "invalid_phone_number", "idempotency_key_reused"} <= codes(422)
    assert "amount_out_of_range" in codes(422)
    conflict = create["409"]["content"]["application/problem+json"]["examples"]
    assert conflict["order_already_has_payment"]["value"]["payment_id"].startswith("pay_")
    validation = create["422"]["content"]["application/problem+json"]["examples"]
    assert validation["invalid_phone_number"]["value"]["errors"][0]["field"] == "phone_number"


def test_no_fastapi_validation_shape_is_left(document: dict[str, Any]) -> None:
    # The gateway answers validation_error as problem+json; HTTPValidationError never goes out.
    text = json.dumps(document)

    assert "HTTPValidationError" not in text
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_problem_examples_match_what_the_api_sends(
    document: dict[str, Any], clean_db: str
) -> None:
    """An unknown API key, as documented, is what a real request gets back."""
    documented = document["paths"]["/v1/payments/{payment_id}"]["get"]["responses"]["401"]
    example = documented["content"]["application/problem+json"]["examples"]["unauthorized"]
    app = create_app(make_settings(clean_db), providers={}, background_jobs=False)
    customise_openapi(app)

    async with LifespanManager(app), client_for(app) as client:
        response = await client.get(
            "/v1/payments/pay_x", headers={"Authorization": "Bearer mgw_not-a-key"}
        )

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == example["value"]


def test_every_error_code_in_the_readme_is_documented(document: dict[str, Any]) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    errors_section = readme.partition("**Errors**")[2].partition("\n\n## ")[0]
    promised = set()
    for status, codes in re.findall(r"^\| (\d{3}) \| (.+) \|$", errors_section, re.MULTILINE):
        promised |= {(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)}
    documented = set()
    for _path, _method, operation in operations(document):
        for status, response in operation["responses"].items():
            media = response.get("content", {}).get("application/problem+json", {})
            documented |= {(int(status), code) for code in media.get("examples", {})}
    # Answered for any path with a method it lacks, so no operation can list it.
    routeless = {(405, "method_not_allowed")}

    assert promised, "README.md has an error table"
    assert promised - routeless - documented == set()


def test_storefront_events_are_documented_as_webhooks(document: dict[str, Any]) -> None:
    webhooks = document["webhooks"]

    assert set(webhooks) == {event_type.value for event_type in EventType}
    for event_type in EventType:
        operation = webhooks[event_type.value]["post"]
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        media = operation["requestBody"]["content"]["application/json"]
        assert media["schema"] == {"$ref": REF + "StorefrontEvent"}
        assert media["example"]["type"] == event_type.value
        subject = event_type.value.partition(".")[0]  # payment.* carry a payment, refund.* a refund
        assert media["example"]["data"]["object"] == subject
        assert media["example"]["data"]["status"] != "pending"
    assert "Standard Webhooks" in document["info"]["description"]


def test_webhook_signature_examples_verify_with_a_standard_webhooks_library(
    document: dict[str, Any],
) -> None:
    """An integrator can test their verifier against the documented example."""
    webhook = Webhook(EXAMPLE_WEBHOOK_SECRET)
    for item in document["webhooks"].values():
        operation = item["post"]
        headers = {p["name"]: p["example"] for p in operation["parameters"]}
        example = operation["requestBody"]["content"]["application/json"]["example"]
        body = json.dumps(example, separators=(",", ":"), ensure_ascii=False)
        signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC)

        expected = webhook.sign(headers["webhook-id"], signed_at, body)

        assert headers["webhook-signature"] == expected
        assert headers["webhook-id"] == example["id"]


def test_provider_callbacks_document_bodies_and_replies(document: dict[str, Any]) -> None:
    callbacks = [
        (path, method, operation)
        for path, method, operation in operations(document)
        if path.startswith("/api/webhooks/")
    ]
    assert {method for _path, method, _operation in callbacks} == {"put", "post"}

    for path, method, operation in callbacks:
        media = operation["requestBody"]["content"]["application/json"]
        expected = "MtnCallback" if "/mtn-momo/" in path else "AirtelCallback"
        assert media["schema"] == {"$ref": REF + expected}, f"{method} {path}"
        reply = operation["responses"]["200"]["content"]["application/json"]
        assert {"status": "success", "message": "Webhook processed"} in example_values(
            document, reply
        )
        assert "security" not in operation  # providers do not hold merchant API keys


def test_health_probes_have_examples(document: dict[str, Any]) -> None:
    healthz = document["paths"]["/healthz"]["get"]["responses"]["200"]["content"]
    readyz = document["paths"]["/readyz"]["get"]["responses"]

    assert example_values(document, healthz["application/json"]) == [{"status": "ok"}]
    assert (
        example_values(document, readyz["200"]["content"]["application/json"])[0]["status"]
        == "ready"
    )
    not_ready = readyz["503"]["content"]["application/problem+json"]["examples"]["not_ready"]
    assert not_ready["value"]["checks"]


async def test_document_is_served_and_built_once() -> None:
    app = build_app()

    async with client_for(app) as client:
        served = (await client.get("/openapi.json")).json()

    assert served == app.openapi()
    assert app.openapi() is app.openapi()

"""Assembling: FastAPI's document, finished with the problems, examples and storefront events,
and served from the app."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.openapi.examples import (
    CALLBACK_REPLY_EXAMPLES,
    CALLBACK_REPLY_SCHEMA,
    HEALTH_SCHEMA,
    READINESS_SCHEMA,
)
from app.openapi.problems import (
    PROBLEM_FIELD_ERROR_SCHEMA,
    PROBLEM_SCHEMA,
    PROBLEMS,
    codes_for,
    is_api,
    is_callback,
    problem_content,
)
from app.openapi.schema import REF, Schema
from app.openapi.storefront_events import (
    STOREFRONT_EVENT_SCHEMA,
    STOREFRONT_EVENTS_DESCRIPTION,
    event_example,
    storefront_webhooks,
)
from app.payments.domain import EventType
from app.payments.schemas import PAYMENT_EXAMPLE
from app.providers import registry
from app.providers.spec import CALLBACK_PREFIX, ProviderSpec
from app.refunds.schemas import REFUND_EXAMPLE

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

_TAGS: list[Schema] = [
    {"name": "payments", "description": "Start payments and follow them to a final status."},
    {
        "name": "events",
        "description": "What the gateway told the storefront, with every delivery attempt.",
    },
    {
        "name": "provider callbacks",
        "description": (
            "Called by MTN MoMo and Airtel Money, not by storefronts. A callback is a hint: the "
            "gateway re-reads the status from the provider before a payment changes."
        ),
    },
    {"name": "operations", "description": "Probes for orchestrators and load balancers."},
    {
        "name": "storefront events",
        "description": "Sent by the gateway to the merchant's callback URL (Standard Webhooks).",
    },
]


def _operations(document: Schema) -> Iterator[tuple[str, str, Schema]]:
    for path, item in document.get("paths", {}).items():
        for method in _HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _validates_nothing(operation: Schema) -> bool:
    """No body, and only unconstrained string parameters: nothing can fail validation."""
    if "requestBody" in operation:
        return False
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if schema.get("type") != "string" or set(schema) - {"type", "title", "description"}:
            return False
    return True


def _references(value: Any, name: str) -> bool:
    return f'"{REF}{name}"' in json.dumps(value)


def _add_problems(path: str, method: str, operation: Schema) -> None:
    responses: Schema = operation.setdefault("responses", {})
    chosen: dict[int, tuple[str, ...]] = {}
    if _references(responses.get("422", {}), "HTTPValidationError"):
        # FastAPI's own 422: the gateway answers validation_error as problem+json instead, and
        # nothing at all where no parameter can be invalid.
        if _validates_nothing(operation):
            del responses["422"]
        else:
            responses["422"] = {"description": "A parameter is not valid (problem+json)."}
            chosen[422] = ("validation_error",)
    if is_api(path) or is_callback(path):
        # Every one of these reads or writes the database.
        responses.setdefault("500", {"description": "Unexpected error (problem+json)."})
        responses.setdefault(
            "503", {"description": "A dependency is unavailable: retry later (problem+json)."}
        )
    for status_text, response in responses.items():
        if not status_text.isdigit() or int(status_text) < 400:
            continue
        status = int(status_text)
        codes = chosen.get(status) or codes_for(method, path, status)
        response["content"] = problem_content(codes, status)
        if status in (409, 503):
            response.setdefault("headers", {})["Retry-After"] = {
                "description": "Seconds to wait before retrying, when retrying can help.",
                "schema": {"type": "integer"},
            }


def _add_success_examples(path: str, method: str, operation: Schema) -> None:
    for status_text, response in operation.get("responses", {}).items():
        if not status_text.startswith("2"):
            continue
        media = response.get("content", {}).get("application/json")
        if media is None:
            continue
        if path == "/healthz":
            media["schema"] = {"$ref": REF + "Health"}
        elif path == "/readyz":
            media["schema"] = {"$ref": REF + "Readiness"}
        elif is_callback(path):
            media["schema"] = {"$ref": REF + "CallbackReply"}
            media["examples"] = copy.deepcopy(CALLBACK_REPLY_EXAMPLES)
    if (method, path) == ("post", "/v1/payments"):
        created = operation.get("responses", {}).get("201")
        if created is not None:
            created["description"] = (
                "The payment: `pending` until the payer approves, or `failed` at once if the "
                "provider refused it."
            )
            created.setdefault("headers", {})["Idempotent-Replayed"] = {
                "description": "`true` when this is the stored answer to an earlier request.",
                "schema": {"type": "string", "enum": ["true"]},
            }
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "Idempotency-Key":
                parameter.setdefault("example", "ORD-1001-attempt-1")


def _callback_spec(path: str) -> ProviderSpec[Any] | None:
    """The registered provider whose callback route ``path`` is."""
    for spec in registry.registered():
        routes = spec.callback_routes + (spec.refunds.callback_routes if spec.refunds else ())
        if any(path == CALLBACK_PREFIX + route.path for route in routes):
            return spec
    return None


def _add_callback_bodies(path: str, operation: Schema) -> None:
    spec = _callback_spec(path) if is_callback(path) else None
    if spec is None or "requestBody" in operation or not spec.callback_schema:
        return
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": REF + spec.callback_schema["title"]},
                "examples": copy.deepcopy(spec.callback_examples),
            }
        },
    }
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "reference":
            subject = "refund" if "/refunds/" in path else "payment"
            parameter.setdefault("description", f"The {subject}'s provider reference.")
        elif parameter.get("name") == "token":
            parameter.setdefault(
                "description", "Keyed hash of the reference; a wrong one is refused (401)."
            )


def _add_component_examples(schemas: Schema) -> None:
    payment = schemas.get("PaymentOut")
    if payment is not None and not payment.get("examples"):
        payment["examples"] = [PAYMENT_EXAMPLE]
    payment_example = (payment or {}).get("examples", [PAYMENT_EXAMPLE])[0]
    listing = schemas.get("PaymentList")
    if listing is not None and not listing.get("examples"):
        listing["examples"] = [{"object": "list", "data": [payment_example], "has_more": False}]
    refunds = schemas.get("RefundList")
    if refunds is not None and not refunds.get("examples"):
        refunds["examples"] = [{"object": "list", "data": [REFUND_EXAMPLE], "has_more": False}]
    event = schemas.get("EventOut")
    events = schemas.get("EventList")
    if events is not None and not events.get("examples") and event and event.get("examples"):
        events["examples"] = [{"object": "list", "data": [event["examples"][0]], "has_more": True}]
    created = schemas.get("StorefrontEvent")
    if created is not None:
        created["examples"] = [event_example(EventType.PAYMENT_SUCCEEDED)]


def _drop_unreferenced(document: Schema) -> None:
    schemas = document["components"]["schemas"]
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if name not in schemas:
            continue
        rest = {key: value for key, value in document.items() if key != "components"}
        others = {key: value for key, value in schemas.items() if key != name}
        if not _references(rest, name) and not _references(others, name):
            del schemas[name]


def build_openapi(app: FastAPI) -> Schema:
    """The document FastAPI would serve, with everything this package adds."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=(app.description or "").rstrip() + "\n" + STOREFRONT_EVENTS_DESCRIPTION,
        terms_of_service=app.terms_of_service,
        contact=app.contact,
        license_info=app.license_info,
        routes=app.routes,
        webhooks=app.webhooks.routes,
        tags=app.openapi_tags,
        servers=app.servers,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", copy.deepcopy(PROBLEM_SCHEMA))
    schemas["Problem"]["examples"] = [
        PROBLEMS["validation_error"].example("validation_error")["value"]
    ]
    schemas.setdefault("ProblemFieldError", copy.deepcopy(PROBLEM_FIELD_ERROR_SCHEMA))
    schemas.setdefault("Health", copy.deepcopy(HEALTH_SCHEMA))
    schemas.setdefault("Readiness", copy.deepcopy(READINESS_SCHEMA))
    schemas.setdefault("CallbackReply", copy.deepcopy(CALLBACK_REPLY_SCHEMA))
    for spec in registry.registered():
        if spec.callback_schema:
            schemas.setdefault(spec.callback_schema["title"], copy.deepcopy(spec.callback_schema))
    schemas.setdefault("StorefrontEvent", copy.deepcopy(STOREFRONT_EVENT_SCHEMA))

    readyz = document.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz.setdefault("responses", {}).setdefault(
            "503", {"description": "The database or Redis does not answer (problem+json)."}
        )
    for path, method, operation in _operations(document):
        # Problems first: the callback bodies added next are read raw, never validated.
        _add_problems(path, method, operation)
        _add_callback_bodies(path, operation)
        _add_success_examples(path, method, operation)
    _add_component_examples(schemas)

    document.setdefault("webhooks", {}).update(storefront_webhooks())
    known = {tag["name"] for tag in document.get("tags", [])}
    document.setdefault("tags", []).extend(t for t in _TAGS if t["name"] not in known)
    bearer = components.get("securitySchemes", {}).get("HTTPBearer")
    if bearer is not None:
        bearer.setdefault("bearerFormat", "API key (mgw_…)")
    _drop_unreferenced(document)
    return document


def customise_openapi(app: FastAPI) -> None:
    """Serve the finished document at ``/openapi.json`` (and ``/docs``). Built on first use, when
    every route is in place, then kept."""

    def openapi() -> Schema:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

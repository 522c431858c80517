"""The OpenAPI document, finished: errors, examples and the storefront events.

FastAPI derives paths and schemas from the routes. What it cannot see is added here, once, the
first time the document is asked for:

- every 4xx/5xx is ``application/problem+json`` (RFC 9457) with a ``Problem`` schema and one
  example per ``code`` the operation can answer, rendered by ``app.errors.problem`` itself so the
  examples cannot drift from the wire;
- FastAPI's own 422 (``HTTPValidationError``) is replaced: the gateway never sends that shape;
- the events the gateway POSTs to storefronts, signed per Standard Webhooks, under ``webhooks``;
- examples for every request body and success response, and the provider callbacks' bodies;
- operation ids made unique (a route answering PUT and POST gets one id per method from
  FastAPI, which OpenAPI forbids).
"""

from app.openapi.assemble import build_openapi, customise_openapi
from app.openapi.storefront_events import EXAMPLE_WEBHOOK_SECRET

__all__ = ["EXAMPLE_WEBHOOK_SECRET", "build_openapi", "customise_openapi"]

"""Reading MTN's answers, the same for every MTN product (Collection, Disbursement): the error
code in a body, how to word an answer, and which answers are worth another attempt."""

from __future__ import annotations

import httpx

from app.providers import outcomes
from app.providers.http import is_transient_status, response_json
from app.providers.mtn_momo import wire


def error_code(response: httpx.Response) -> str | None:
    """The ``code`` of MTN's error body, upper-cased, or None."""
    error = wire.parse_error(response_json(response))
    return error.code.strip().upper() if error and error.code else None


def describe(response: httpx.Response) -> str:
    """``"HTTP 500 NOT_ALLOWED: …"``, or just the status when the body names no error."""
    error = wire.parse_error(response_json(response))
    if error is None:
        return outcomes.describe_status(response)
    detail = f"{error.code}: {error.message}" if error.message else str(error.code)
    return f"HTTP {response.status_code} {detail}"


def is_configuration_error(response: httpx.Response) -> bool:
    return error_code(response) in wire.MTN_CONFIGURATION_ERRORS


def names_another_error(response: httpx.Response) -> bool:
    """Whether a 404's body names an error other than "not found" (then it is not MTN saying
    it has no record of the reference)."""
    code = error_code(response)
    return code is not None and code not in wire.MTN_NOT_FOUND_CODES


def is_transient_token(response: httpx.Response) -> bool:
    # Bad credentials have been seen as 500 {"error": "login_failed"}: no retry fixes those.
    payload = response_json(response)
    if isinstance(payload, dict) and payload.get("error") == "login_failed":
        return False
    return is_transient_status(response)


def is_transient_query(response: httpx.Response) -> bool:
    return is_transient_status(response) and not is_configuration_error(response)

"""Logging: JSON lines in production, a readable console format in ``dev``.

Every line carries the request id of the request (or job) it belongs to, plus the payment,
provider, event and merchant it is about when the code says so (``extra=``). Whatever the code
says, a redaction step masks phone numbers (``2567*****456``) and removes bearer/basic
credentials, API keys, webhook secrets and tokens before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The payment a provider call is about: the adapters' own lines (warnings about an unknown
# outcome, refused credentials) then carry its id without each adapter being told it.
payment_context_var: ContextVar[tuple[str, str] | None] = ContextVar(
    "payment_context", default=None
)


@contextmanager
def payment_log_context(payment_id: str, provider: str) -> Iterator[None]:
    token = payment_context_var.set((payment_id, provider))
    try:
        yield
    finally:
        payment_context_var.reset(token)


# Context a log call may attach with extra={...}; anything else in extra is ignored.
CONTEXT_FIELDS = (
    "request_id",
    "payment_id",
    "refund_id",
    "provider",
    "event_id",
    "merchant_id",
    "actor",
    "source_ip",
    "method",
    "path",
    "status",
    "duration_ms",
)

_PHONE = re.compile(r"(?<!\d)(2567\d{2})(\d{3})(\d{3})(?!\d)|(?<!\d)(07\d{2})(\d{3})(\d{3})(?!\d)")
_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
    (re.compile(r"\bmgw_[A-Za-z0-9_-]+"), "mgw_[redacted]"),
    (
        re.compile(
            r"(?i)([\"']?(?:access_token|client_secret|api_?key|subscription_?key|secret|"
            r"password|signature|hash|token)[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}&]+"
        ),
        r"\1[redacted]",
    ),
]


# Each secret pattern above needs one of these words and the phone pattern a run of ten digits:
# one scan for them spares most lines (an access line, "payment created") the five substitutions.
_SECRET_HINT = re.compile(
    r"(?i)bearer|basic|whsec_|mgw_|token|secret|api_?key|subscription_?key|password|signature|hash"
)
_PHONE_HINT = re.compile(r"\d{10}")


def redact(text: str) -> str:
    if _SECRET_HINT.search(text):
        for pattern, replacement in _SECRETS:
            text = pattern.sub(replacement, text)
    if not _PHONE_HINT.search(text):
        return text

    def mask_phone(match: re.Match[str]) -> str:
        if match.group(1):
            return f"{match.group(1)[:4]}*****{match.group(3)}"
        return f"{match.group(4)[:2]}*****{match.group(6)}"

    return _PHONE.sub(mask_phone, text)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    context: dict[str, Any] = {}
    request_id = request_id_var.get()
    if request_id:
        context["request_id"] = request_id
    payment = payment_context_var.get()
    if payment is not None:
        context["payment_id"], context["provider"] = payment
    for name in CONTEXT_FIELDS:
        value = record.__dict__.get(name)
        if value is not None:
            context[name] = value
    return context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        context = " ".join(f"{k}={v}" for k, v in _context(record).items())
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            text += f"  [{context}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    # Neither format shows the source line, thread or process of a record: not collecting them
    # spares a stack walk and three lookups per line (the logging module's own advice).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if fmt == "console" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every URL at INFO, and some provider URLs carry a phone number.
    for noisy in ("httpx", "httpcore", "uvicorn.access", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Let uvicorn's own loggers reach our handler (and formatter) instead of theirs.
    for name in ("uvicorn", "uvicorn.error", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

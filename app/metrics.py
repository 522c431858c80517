"""Prometheus metrics. Labels never carry ids or phone numbers, only small fixed sets.

The collectors are module-level, as prometheus-client intends: one registry per process, read
by ``/metrics`` on the API and by the worker's own metrics port.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# prometheus-client adds a ``*_created`` series (the child's creation time) beside every counter
# and histogram child. In the text format Prometheus scrapes it is one more series per child,
# not in README's table and read by no alert; off, for this process and the worker alike.
# (prometheus-client leaves this one function unannotated.)
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    "momo_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "momo_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)
PAYMENTS_CREATED = Counter("momo_payments_created_total", "Payments created", ["provider"])
# Not in momo_http_requests_total: a refusal skips every other layer to stay cheap.
OVERLOAD_REFUSALS = Counter(
    "momo_overload_refusals_total",
    "POST /v1/payments answered 503 overloaded (MAX_REQUESTS_IN_FLIGHT reached)",
)
PAYMENT_TRANSITIONS = Counter(
    "momo_payment_transitions_total",
    "Payment status transitions",
    ["provider", "from_status", "to_status", "actor"],
)
REFUNDS_CREATED = Counter("momo_refunds_created_total", "Refunds created", ["provider"])
REFUND_TRANSITIONS = Counter(
    "momo_refund_transitions_total",
    "Refund status transitions",
    ["provider", "from_status", "to_status", "actor"],
)
PROVIDER_REQUESTS = Histogram(
    "momo_provider_request_duration_seconds",
    "Calls to a provider, retries included",
    ["provider", "operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
TOKEN_CACHE = Counter(
    "momo_token_cache_requests_total",
    "OAuth token lookups",
    ["result"],  # hit | miss
)
CALLBACKS = Counter(
    "momo_callbacks_received_total", "Provider callbacks received", ["provider", "result"]
)
PENDING_PAYMENTS = Gauge("momo_pending_payments", "Payments pending", ["provider"])
NEEDS_REVIEW_PAYMENTS = Gauge(
    "momo_needs_review_payments", "Payments waiting for an operator (needs_review)", ["provider"]
)
OLDEST_PENDING_AGE = Gauge(
    "momo_oldest_pending_payment_age_seconds",
    "Age of the oldest pending payment when the gauges were refreshed; 0 with none pending",
    ["provider"],
)
OUTBOX_BACKLOG = Gauge("momo_outbox_backlog", "Events not yet delivered (pending)")
DELIVERY_ATTEMPTS = Counter(
    "momo_event_delivery_attempts_total", "Storefront delivery attempts", ["result"]
)
RECONCILE_RUNS = Counter(
    "momo_reconcile_runs_total",
    "Reconciler sweeps, counted once per provider",
    ["provider", "result"],  # ok | error
)
RECONCILE_CHECKS = Counter(
    "momo_reconcile_checks_total", "Payments checked by the reconciler", ["provider", "result"]
)
SMS_RECEIPTS = Counter(
    "momo_sms_receipts_total",
    "SMS receipts sent to Africa's Talking, by outcome",
    ["result", "status_code"],  # sent | refused | retry | gave_up; the recipient code or none
)
# Set on every worker tick (the arq cron sweeps, or the API's embedded jobs): a timestamp rather
# than the scrape target's ``up``, because the worker's metrics thread keeps answering while its
# job loop is stuck or its Redis is gone. A process that runs no jobs serves 0 ("never").
WORKER_HEARTBEAT = Gauge(
    "momo_worker_heartbeat_timestamp_seconds", "Unix time of this process's last job tick"
)
# The API's readiness checks, refreshed on /readyz and on every /metrics scrape: /metrics itself
# answers while the database is away, so ``up`` alone cannot tell a ready API from a broken one.
DEPENDENCY_UP = Gauge(
    "momo_dependency_up",
    "1 when the dependency answered the API's last readiness check, else 0",
    ["dependency"],  # database | redis
)

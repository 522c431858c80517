"""Provider errors.

ProviderError
 ├── ProviderNotConfigured   credentials absent: the provider is switched off
 ├── ProviderUnavailable     could not get an answer (network, timeouts, 5xx, 429) after retries
 └── ProviderRejected        a definitive answer that is not a business outcome (bad request,
                             bad credentials); carries the mapped failure code
"""

from __future__ import annotations

from app.vocabulary import FailureCode


class ProviderError(Exception):
    """Base of every error an adapter raises."""


class ProviderNotConfigured(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    """Transient: the same call may succeed later. Never settles a payment."""


class ProviderRejected(ProviderError):
    def __init__(
        self, message: str, *, status_code: int | None = None, code: FailureCode | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code or FailureCode.INVALID_REQUEST

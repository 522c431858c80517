"""Request dependencies, as ``Annotated`` aliases so routes read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Unauthorized
from app.merchants.auth import AuthenticatedMerchant
from app.payments.service import PaymentService
from app.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="The merchant's API key.")


# Dependencies are `async def` even when they await nothing: FastAPI runs plain `def` ones in a
# thread pool, which costs more than the work they do.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_current_merchant(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthenticatedMerchant:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
    # A disabled merchant's key raises MerchantDisabled (401 merchant_disabled) in here.
    merchant = await runtime.merchant_keys.merchant_for(credentials.credentials)
    if merchant is None:
        raise Unauthorized("Unknown API key.")
    return merchant


CurrentMerchant = Annotated[AuthenticatedMerchant, Depends(get_current_merchant)]


async def get_payment_service(runtime: RuntimeDep) -> PaymentService:
    return runtime.payments


PaymentServiceDep = Annotated[PaymentService, Depends(get_payment_service)]

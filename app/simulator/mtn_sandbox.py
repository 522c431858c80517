"""MTN's sandbox provisioning API: create an API user, generate its key, read it back.

A user created here can fetch tokens like the configured default pairs, and its
``providerCallbackHost`` is enforced on ``X-Callback-Url`` as MTN does. The provisioning API takes
the subscription key of any product the developer subscribed to (Collection or Disbursement), and
the user it creates works with either.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.simulator.config import Endpoint, SimulatorConfig
from app.simulator.mtn import UUID_PATTERN, MtnRoute, fail, mtn_error, require_subscription_key
from app.simulator.routing import simulator_of


def _require_any_product_key(request: Request, config: SimulatorConfig) -> None:
    require_subscription_key(
        request, config.mtn_subscription_key, config.mtn_disbursement_subscription_key
    )


class MtnApiUser(BaseModel):
    model_config = ConfigDict(strict=True, populate_by_name=True)

    provider_callback_host: str = Field(alias="providerCallbackHost", min_length=1, max_length=253)


router = APIRouter(route_class=MtnRoute)


@router.post("/v1_0/apiuser", name=Endpoint.MTN_PROVISIONING)
async def create_api_user(request: Request) -> Response:
    simulator = simulator_of(request)
    _require_any_product_key(request, simulator.config)
    user_id = request.headers.get("X-Reference-Id", "")
    if not UUID_PATTERN.match(user_id):
        fail(400, "VALIDATION_ERROR", "X-Reference-Id must be a UUID.")
    try:
        body = MtnApiUser.model_validate_json(await request.body() or b"null")
    except ValidationError:
        fail(400, "VALIDATION_ERROR", "providerCallbackHost is required.")
    if not simulator.credentials.provision_user(user_id, body.provider_callback_host):
        return mtn_error(
            409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation of resource failed."
        )
    return Response(status_code=201)


@router.post("/v1_0/apiuser/{user_id}/apikey", name=Endpoint.MTN_PROVISIONING)
async def create_api_key(user_id: str, request: Request) -> Response:
    simulator = simulator_of(request)
    _require_any_product_key(request, simulator.config)
    api_key = simulator.credentials.new_api_key(user_id)
    if api_key is None:
        return mtn_error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
    return JSONResponse(status_code=201, content={"apiKey": api_key})


@router.get("/v1_0/apiuser/{user_id}", name=Endpoint.MTN_PROVISIONING)
async def read_api_user(user_id: str, request: Request) -> Response:
    simulator = simulator_of(request)
    _require_any_product_key(request, simulator.config)
    user = simulator.credentials.user(user_id)
    if user is None:
        return mtn_error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
    return JSONResponse(
        content={
            "providerCallbackHost": user.provider_callback_host,
            "targetEnvironment": simulator.config.mtn_target_environment,
        }
    )

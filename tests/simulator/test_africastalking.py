"""Africa's Talking SMS over HTTP: the 201 with a code per recipient, auth, delivery reports."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from app.simulator.config import DEFAULT_AFRICASTALKING_API_KEY
from tests.simulator.conftest import CallbackReceiver, SimulatorClient, StartSimulator

HEADERS = {"apiKey": DEFAULT_AFRICASTALKING_API_KEY, "Accept": "application/json"}
RECEIPT = "Payment of UGX 50,000 to Demo storefront received. Order ORD-1. Ref MP1"


async def send_sms(
    http: httpx.AsyncClient,
    to: str = "+256772123456",
    *,
    headers: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    form = {"username": "sandbox", "to": to, "message": RECEIPT, "from": "MOMOGW", **fields}
    return await http.post(
        "/version1/messaging", data=form, headers=HEADERS if headers is None else headers
    )


def only_recipient(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    [recipient] = response.json()["SMSMessageData"]["Recipients"]
    result: dict[str, Any] = recipient
    return result


async def test_an_accepted_sms_answers_201_with_its_recipient(sim: SimulatorClient) -> None:
    response = await send_sms(sim.http)

    assert response.status_code == 201
    data = response.json()["SMSMessageData"]
    assert data["Message"] == "Sent to 1/1 Total Cost: UGX 30.0000"
    [recipient] = data["Recipients"]
    assert recipient["statusCode"] == 101
    assert recipient["status"] == "Success"
    assert recipient["number"] == "+256772123456"
    assert recipient["cost"] == "UGX 30.0000"
    assert re.fullmatch(r"ATXid_[0-9a-f]{32}", recipient["messageId"])


@pytest.mark.parametrize(
    ("number", "status_code", "status"),
    [
        ("+256772000403", 403, "InvalidPhoneNumber"),
        ("+256772000405", 405, "InsufficientBalance"),
        ("+256772000500", 500, "InternalServerError"),
        ("+256772000501", 501, "GatewayError"),
        ("not-a-number", 403, "InvalidPhoneNumber"),
    ],
)
async def test_the_number_chooses_a_refusal_inside_a_201(
    sim: SimulatorClient, number: str, status_code: int, status: str
) -> None:
    response = await send_sms(sim.http, number)

    assert only_recipient(response) == {
        "statusCode": status_code,
        "number": number,
        "cost": "0",
        "status": status,
        "messageId": "None",
    }
    assert response.json()["SMSMessageData"]["Message"] == "Sent to 0/1 Total Cost: 0"


async def test_one_recipient_per_number(sim: SimulatorClient) -> None:
    response = await send_sms(sim.http, "+256772123456, +256772000405,+256701234567")

    assert response.status_code == 201
    data = response.json()["SMSMessageData"]
    assert [r["statusCode"] for r in data["Recipients"]] == [101, 405, 101]
    assert data["Message"] == "Sent to 2/3 Total Cost: UGX 60.0000"


async def test_a_long_message_costs_one_page_per_153_characters(sim: SimulatorClient) -> None:
    response = await send_sms(sim.http, message="x" * 161)

    assert only_recipient(response)["cost"] == "UGX 60.0000"


@pytest.mark.parametrize(
    ("headers", "fields"),
    [
        ({"apiKey": "wrong", "Accept": "application/json"}, {}),
        ({"Accept": "application/json"}, {}),
        (HEADERS, {"username": ""}),
    ],
    ids=["wrong key", "no key", "no username"],
)
async def test_bad_credentials_are_401(
    sim: SimulatorClient, headers: dict[str, str], fields: dict[str, str]
) -> None:
    response = await send_sms(sim.http, headers=headers, **fields)

    assert response.status_code == 401
    assert response.text == "The supplied authentication is invalid"


@pytest.mark.parametrize("missing", ["to", "message"])
async def test_a_missing_field_is_400(sim: SimulatorClient, missing: str) -> None:
    response = await send_sms(sim.http, **{missing: ""})

    assert response.status_code == 400
    assert missing in response.text


async def test_a_delivery_report_arrives_after_the_delay(
    sim: SimulatorClient, receiver: CallbackReceiver
) -> None:
    await sim.configure(
        sms_delivery_report_url=f"{receiver.base_url}/at/secret-token",
        sms_report_delay_seconds=0.2,
    )

    message_id = only_recipient(await send_sms(sim.http))["messageId"]
    only_recipient(await send_sms(sim.http, "+256772000403"))  # refused: no report
    assert receiver.received == []  # not before the delay

    [report] = await receiver.wait_for(1)
    assert report.method == "POST"
    assert report.url.endswith("/at/secret-token")
    assert report.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(report.body.decode()) == {
        "id": [message_id],
        "status": ["Success"],
        "phoneNumber": ["+256772123456"],
        "networkCode": ["64110"],
    }
    assert len(receiver.received) == 1


async def test_no_report_url_means_no_report(sim: SimulatorClient) -> None:
    only_recipient(await send_sms(sim.http))

    assert (await sim.stats())["background_tasks"] == 0


async def test_injected_errors_apply_to_messaging(sim: SimulatorClient) -> None:
    await sim.configure(
        endpoint_faults={"africastalking.messaging": {"error_rate": 1, "error_status": 500}}
    )

    response = await send_sms(sim.http)

    assert response.status_code == 500
    endpoint = (await sim.stats())["endpoints"]["africastalking.messaging"]
    assert endpoint["requests"] == 1
    assert endpoint["faults"] == {"error": 1}


async def test_a_startup_config_sets_the_key_and_report_url(
    start_simulator: StartSimulator, receiver: CallbackReceiver
) -> None:
    client = await start_simulator(
        africastalking_api_key="another-key",
        sms_delivery_report_url=f"{receiver.base_url}/reports",
        sms_report_delay_seconds=0,
    )

    assert (await send_sms(client.http)).status_code == 401
    accepted = await send_sms(client.http, headers={"apiKey": "another-key"})
    message_id = only_recipient(accepted)["messageId"]
    [report] = await receiver.wait_for(1)
    assert parse_qs(report.body.decode())["id"] == [message_id]

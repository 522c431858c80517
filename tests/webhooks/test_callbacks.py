"""Provider callbacks through the app: verified, deduplicated, never believed blindly.

The provider behind verify-by-fetch is a fake here, so each test says exactly what "the
provider" answers; the end-to-end versions against the simulator are in test_callbacks_e2e.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.callback_tokens import callback_token
from app.merchants.service import create_merchant
from app.providers.base import ProviderPaymentStatus, StatusResult
from app.vocabulary import Provider
from tests.conftest import count_rows, make_settings, running_app
from tests.fakes import FakeProvider

MTN_ROUTE = "/api/webhooks/mtn-momo/"
AIRTEL_ROUTE = "/api/webhooks/airtel-money/"
GUIDE_BODY = {
    "externalId": "TEST-001",
    "referenceId": "test-uuid-12345",
    "status": "SUCCESSFUL",
    "amount": "1000",
    "currency": "UGX",
}


def succeeded(amount: int = 1000, currency: str = "UGX") -> StatusResult:
    return StatusResult(
        status=ProviderPaymentStatus.SUCCESSFUL,
        amount_minor=amount,
        currency=currency,
        provider_transaction_id="2345678901",
    )


class Gateway:
    """The app with fake providers, a merchant, and shortcuts for these tests."""

    def __init__(self, app, http, providers, api_key):
        self.app, self.http, self.providers = app, http, providers
        self.auth = {"Authorization": f"Bearer {api_key}"}
        self.runtime = app.state.runtime

    async def pay(self, order_id="TEST-001", phone="0772123456", amount="1000"):
        response = await self.http.post(
            "/v1/payments",
            json={"order_id": order_id, "amount": amount, "phone_number": phone},
            headers=self.auth,
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def status_of(self, payment) -> str:
        response = await self.http.get(f"/v1/payments/{payment['id']}", headers=self.auth)
        return response.json()["status"]

    def mtn_url(self, payment, token=None) -> str:
        reference = payment["provider_reference"]
        token = token or callback_token(self.runtime.callback_secret, reference)
        return f"{MTN_ROUTE}{reference}/{token}"


@pytest.fixture
def gateway_factory(clean_db):
    def factory(**overrides):
        settings = make_settings(clean_db, **overrides)
        providers = {
            Provider.MTN_MOMO: FakeProvider(Provider.MTN_MOMO),
            Provider.AIRTEL_MONEY: FakeProvider(Provider.AIRTEL_MONEY),
        }

        class _Running:
            async def __aenter__(self):
                self._cm = running_app(settings, providers)
                app, http = await self._cm.__aenter__()
                merchant = await create_merchant(
                    app.state.runtime.sessions, name="Shop", callback_url="https://shop.example/"
                )
                return Gateway(app, http, providers, merchant.api_key)

            async def __aexit__(self, *exc):
                await self._cm.__aexit__(*exc)

        return _Running()

    return factory


# --- the original guide's curl examples --------------------------------------------------------


async def test_guide_test_webhook_locally(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()

        response = await gw.http.post(MTN_ROUTE, json=GUIDE_BODY)

        assert response.status_code == 200
        assert response.json() == {"status": "success", "message": "Webhook processed"}
        assert await gw.status_of(payment) == "successful"
        # The body's referenceId is not ours: the provider was asked about our reference.
        assert gw.providers[Provider.MTN_MOMO].status_calls == [payment["provider_reference"]]


async def test_guide_test_idempotency(gateway_factory):
    async with gateway_factory() as gw:
        await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        body = {**GUIDE_BODY, "referenceId": "same-uuid-12345"}

        first = await gw.http.post(MTN_ROUTE, json=body)
        second = await gw.http.post(MTN_ROUTE, json=body)

        assert first.json() == {"status": "success", "message": "Webhook processed"}
        assert second.status_code == 200
        assert second.json() == {"status": "success", "message": "Already processed"}
        assert await count_rows(gw.runtime, "events") == 1


# --- the per-payment MTN callback ---------------------------------------------------------------


async def test_mtn_put_without_reference_settles_through_the_provider(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        body = {
            "financialTransactionId": "2345678901",
            "externalId": "TEST-001",
            "amount": "1000",
            "currency": "UGX",
            "status": "SUCCESSFUL",
        }

        response = await gw.http.put(gw.mtn_url(payment), json=body)

        assert response.status_code == 200
        assert response.json()["message"] == "Webhook processed"
        assert await gw.status_of(payment) == "successful"


@pytest.mark.parametrize(
    ("provider_says", "expected"),
    [(ProviderPaymentStatus.FAILED, "failed"), (ProviderPaymentStatus.PENDING, "pending")],
)
async def test_a_body_claiming_success_is_not_believed(gateway_factory, provider_says, expected):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = StatusResult(status=provider_says)

        response = await gw.http.put(
            gw.mtn_url(payment), json={"status": "SUCCESSFUL", "amount": "1000"}
        )

        assert response.status_code == 200
        assert await gw.status_of(payment) == expected
        assert await count_rows(gw.runtime, "events", "type = 'payment.succeeded'") == 0


async def test_wrong_token_is_401_and_changes_nothing(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()

        response = await gw.http.put(gw.mtn_url(payment, token="forged"), json={})

        assert response.status_code == 401
        assert response.json()["code"] == "token_invalid"
        assert await gw.status_of(payment) == "pending"
        assert gw.providers[Provider.MTN_MOMO].status_calls == []
        assert await count_rows(gw.runtime, "provider_callbacks", "outcome = 'token_invalid'") == 1


async def test_a_token_for_another_payment_is_refused(gateway_factory):
    async with gateway_factory() as gw:
        first = await gw.pay(order_id="ORD-1")
        second = await gw.pay(order_id="ORD-2")
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        token_of_first = gw.mtn_url(first).rsplit("/", 1)[1]

        response = await gw.http.put(gw.mtn_url(second, token=token_of_first), json={})

        assert response.status_code == 401
        assert await gw.status_of(second) == "pending"


@pytest.mark.parametrize("signature", [None, "00" * 32, "not-hex"])
async def test_mtn_signature_required_when_a_secret_is_set(gateway_factory, signature):
    async with gateway_factory(mtn_momo_webhook_secret="s3cret") as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        headers = {"X-Signature": signature} if signature else {}

        response = await gw.http.post(MTN_ROUTE, json=GUIDE_BODY, headers=headers)

        assert response.status_code == 401
        assert await gw.status_of(payment) == "pending"


async def test_mtn_valid_signature_is_accepted(gateway_factory):
    async with gateway_factory(mtn_momo_webhook_secret="s3cret") as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        raw = json.dumps(GUIDE_BODY).encode()
        signature = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()

        response = await gw.http.post(
            MTN_ROUTE,
            content=raw,
            headers={"X-Signature": signature, "Content-Type": "application/json"},
        )

        assert response.status_code == 200
        assert await gw.status_of(payment) == "successful"


async def test_disallowed_ip_is_403(gateway_factory):
    async with gateway_factory(mtn_momo_allowed_ips="41.202.207.0/24") as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()

        response = await gw.http.put(gw.mtn_url(payment), json={})

        assert response.status_code == 403
        assert response.json()["code"] == "ip_denied"
        assert await gw.status_of(payment) == "pending"


async def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(gateway_factory):
    # The test client's address is 127.0.0.1, which is not a trusted proxy here.
    async with gateway_factory(mtn_momo_allowed_ips="41.202.207.0/24") as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()

        response = await gw.http.put(
            gw.mtn_url(payment), json={}, headers={"X-Forwarded-For": "41.202.207.5"}
        )

        assert response.status_code == 403
        assert await gw.status_of(payment) == "pending"


async def test_forwarded_for_is_believed_from_a_trusted_proxy(gateway_factory):
    async with gateway_factory(
        mtn_momo_allowed_ips="41.202.207.0/24", trusted_proxies="127.0.0.1"
    ) as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()

        response = await gw.http.put(
            gw.mtn_url(payment), json={}, headers={"X-Forwarded-For": "41.202.207.5"}
        )

        assert response.status_code == 200
        assert await gw.status_of(payment) == "successful"


async def test_amount_mismatch_goes_to_review_never_success(gateway_factory, caplog):
    async with gateway_factory() as gw:
        payment = await gw.pay(amount="50000")
        gw.providers[Provider.MTN_MOMO].status = succeeded(amount=500)

        response = await gw.http.put(gw.mtn_url(payment), json={"status": "SUCCESSFUL"})

        assert response.status_code == 200
        assert await gw.status_of(payment) == "needs_review"
        assert await count_rows(gw.runtime, "events", "type = 'payment.needs_review'") == 1
        assert await count_rows(gw.runtime, "events", "type = 'payment.succeeded'") == 0
        assert any(r.levelname == "ERROR" and "amount" in r.getMessage() for r in caplog.records)


async def test_currency_mismatch_goes_to_review(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded(currency="EUR")
        await gw.http.put(gw.mtn_url(payment), json={})
        assert await gw.status_of(payment) == "needs_review"


async def test_fifty_identical_callbacks_make_one_transition(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        url = gw.mtn_url(payment)
        body = {"status": "SUCCESSFUL", "financialTransactionId": "2345678901"}

        responses = await asyncio.gather(*(gw.http.put(url, json=body) for _ in range(50)))

        assert all(r.status_code == 200 for r in responses)
        messages = [r.json()["message"] for r in responses]
        assert messages.count("Webhook processed") == 1
        assert messages.count("Already processed") == 49
        pid = payment["id"]
        assert (
            await count_rows(
                gw.runtime,
                "payment_transitions",
                "payment_id = :p AND to_status = 'successful'",
                p=pid,
            )
            == 1
        )
        assert await count_rows(gw.runtime, "events", "payment_id = :p", p=pid) == 1
        assert await count_rows(gw.runtime, "provider_callbacks") == 50


async def test_callback_after_the_reconciler_settled_it_sends_no_second_event(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()
        refreshed = await gw.http.post(f"/v1/payments/{payment['id']}/refresh", headers=gw.auth)
        assert refreshed.json()["status"] == "successful"

        response = await gw.http.put(gw.mtn_url(payment), json={"status": "SUCCESSFUL"})

        assert response.status_code == 200
        assert await count_rows(gw.runtime, "events") == 1


async def test_provider_down_during_the_check_defers_and_allows_a_retry(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay()
        mtn = gw.providers[Provider.MTN_MOMO]
        mtn.unavailable = True
        first = await gw.http.put(gw.mtn_url(payment), json={"status": "SUCCESSFUL"})
        assert first.status_code == 200
        assert await gw.status_of(payment) == "pending"

        mtn.unavailable = False
        mtn.status = succeeded()
        retry = await gw.http.put(gw.mtn_url(payment), json={"status": "SUCCESSFUL"})
        assert retry.json()["message"] == "Webhook processed"
        assert await gw.status_of(payment) == "successful"


async def test_unknown_payment_is_404_and_malformed_json_is_400(gateway_factory):
    async with gateway_factory() as gw:
        unknown = await gw.http.post(MTN_ROUTE, json={**GUIDE_BODY, "externalId": "NOPE"})
        assert unknown.status_code == 404
        malformed = await gw.http.post(
            MTN_ROUTE, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400
        assert malformed.json()["code"] == "malformed_json"
        airtel = await gw.http.post(AIRTEL_ROUTE, json={"transaction": {"id": "nope"}})
        assert airtel.status_code == 404


# --- Airtel ------------------------------------------------------------------------------------


def airtel_body(reference: str, secret: bytes | None = None, status: str = "TS") -> bytes:
    transaction = {
        "id": reference,
        "message": "Paid UGX 1,000",
        "status_code": status,
        "airtel_money_id": "MP210603.1234.L06941",
    }
    body: dict = {"transaction": transaction}
    if secret is not None:
        compact = json.dumps(transaction, separators=(",", ":")).encode()
        body["hash"] = base64.b64encode(hmac.new(secret, compact, hashlib.sha256).digest()).decode()
    return json.dumps(body).encode()


async def test_airtel_callback_with_a_valid_hash_settles(gateway_factory):
    async with gateway_factory(airtel_money_webhook_secret="airtel-key") as gw:
        payment = await gw.pay(phone="0700123456")
        gw.providers[Provider.AIRTEL_MONEY].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL, provider_transaction_id="MP210603"
        )

        response = await gw.http.post(
            AIRTEL_ROUTE,
            content=airtel_body(payment["provider_reference"], b"airtel-key"),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 200
        assert response.json() == {"status": "success", "message": "Webhook processed"}
        assert await gw.status_of(payment) == "successful"


@pytest.mark.parametrize("secret", [None, b"wrong-key"])
async def test_airtel_wrong_or_missing_hash_is_401(gateway_factory, secret):
    async with gateway_factory(airtel_money_webhook_secret="airtel-key") as gw:
        payment = await gw.pay(phone="0700123456")
        gw.providers[Provider.AIRTEL_MONEY].status = StatusResult(
            status=ProviderPaymentStatus.SUCCESSFUL
        )

        response = await gw.http.post(
            AIRTEL_ROUTE,
            content=airtel_body(payment["provider_reference"], secret),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 401
        assert await gw.status_of(payment) == "pending"
        assert gw.providers[Provider.AIRTEL_MONEY].status_calls == []


async def test_airtel_callback_claiming_ts_while_enquiry_says_tf(gateway_factory):
    async with gateway_factory() as gw:
        payment = await gw.pay(phone="0700123456")
        gw.providers[Provider.AIRTEL_MONEY].status = StatusResult(
            status=ProviderPaymentStatus.FAILED
        )
        await gw.http.post(AIRTEL_ROUTE, content=airtel_body(payment["provider_reference"]))
        assert await gw.status_of(payment) == "failed"


# --- fuzz ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries(
        {
            "transaction": st.dictionaries(
                st.sampled_from(["id", "status_code", "message"]), json_values
            )
        }
    ).map(lambda v: json.dumps(v).encode())
    | st.text(min_size=1000, max_size=5000).map(lambda s: json.dumps({"status": s}).encode())
)


async def test_fuzzed_callback_bodies_never_produce_a_5xx(gateway_factory):
    async with gateway_factory(mtn_momo_webhook_secret=None) as gw:
        payment = await gw.pay()
        urls = [MTN_ROUTE, AIRTEL_ROUTE, gw.mtn_url(payment), gw.mtn_url(payment, token="x")]
        loop = asyncio.get_running_loop()
        failures: list[tuple[str, bytes, int]] = []

        @hsettings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(body=bodies, url=st.sampled_from(urls), method=st.sampled_from(["PUT", "POST"]))
        def check(body, url, method):
            future = asyncio.run_coroutine_threadsafe(
                gw.http.request(
                    method, url, content=body, headers={"Content-Type": "application/json"}
                ),
                loop,
            )
            status = future.result(timeout=30).status_code
            if status >= 500:
                failures.append((url, body, status))

        await asyncio.to_thread(check)
        assert failures == []


async def test_a_second_forwarded_for_line_cannot_smuggle_an_allowed_address(gateway_factory):
    # Trusted proxy 127.0.0.1 appended the real client (192.0.2.9) on its own line; the client
    # wrote an allowed address on an earlier line. Read from the right, the client is 192.0.2.9.
    async with gateway_factory(
        mtn_momo_allowed_ips="41.202.207.0/24", trusted_proxies="127.0.0.1"
    ) as gw:
        payment = await gw.pay()
        gw.providers[Provider.MTN_MOMO].status = succeeded()

        response = await gw.http.put(
            gw.mtn_url(payment),
            json={},
            headers=[("X-Forwarded-For", "41.202.207.5"), ("X-Forwarded-For", "192.0.2.9")],
        )

        assert response.status_code == 403
        assert await gw.status_of(payment) == "pending"


async def test_a_slow_provider_check_is_answered_in_time_and_finished_later(gateway_factory):
    async with gateway_factory(callback_verify_deadline_seconds=0.05) as gw:
        payment = await gw.pay()
        mtn = gw.providers[Provider.MTN_MOMO]
        mtn.status = succeeded()
        release = asyncio.Event()
        original = mtn.get_status

        async def slow_status(reference):
            await release.wait()
            return await original(reference)

        mtn.get_status = slow_status

        response = await gw.http.put(gw.mtn_url(payment), json={"status": "SUCCESSFUL"})

        assert response.status_code == 200
        assert response.json()["message"].startswith("Webhook received")
        assert await gw.status_of(payment) == "pending"
        release.set()
        deadline = asyncio.get_running_loop().time() + 10
        while await gw.status_of(payment) != "successful":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)

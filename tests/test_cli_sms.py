"""``momo-gateway merchants update ID --sms-receipts on|off --sms-template TEXT``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.cli import main

DEFAULT_TEMPLATE = "Payment of {amount} to {merchant} received. Order {order}. Ref {ref}"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "m.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    assert main(["migrate"]) == 0
    return path


@pytest.fixture
def merchant_id(database: Path, capsys: pytest.CaptureFixture[str]) -> str:
    created = main(
        ["merchants", "create", "--name", "Shop", "--callback-url", "https://shop.example/events"]
    )
    assert created == 0
    merchant: str = json.loads(capsys.readouterr().out)["id"]
    return merchant


def stored_sms_settings(database: Path) -> tuple[Any, ...]:
    with sqlite3.connect(database) as connection:
        row: tuple[Any, ...] = connection.execute(
            "SELECT sms_receipts, sms_template FROM merchants"
        ).fetchone()
    return row


def update(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["merchants", "update", *argv])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def test_switching_receipts_on_prints_the_effective_template_and_an_example(
    database: Path, merchant_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = update(capsys, merchant_id, "--sms-receipts", "on")

    assert code == 0
    printed = json.loads(out)
    assert set(printed) == {"id", "sms_receipts", "sms_template", "example"}
    assert printed["id"] == merchant_id
    assert printed["sms_receipts"] is True
    assert printed["sms_template"] == DEFAULT_TEMPLATE
    assert printed["example"].startswith("Payment of UGX ")
    assert "{" not in printed["example"]
    assert stored_sms_settings(database)[0] == 1


def test_a_template_of_its_own_then_receipts_off(
    database: Path, merchant_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    template = "Thank you! {amount} received by {merchant} for {order} ({ref})"
    code, out, _ = update(capsys, merchant_id, "--sms-receipts", "on", "--sms-template", template)
    assert code == 0
    printed = json.loads(out)
    assert printed["sms_template"] == template
    assert printed["example"].startswith("Thank you! UGX ")

    code, out, _ = update(capsys, merchant_id, "--sms-receipts", "off")

    assert code == 0
    printed = json.loads(out)
    assert printed["sms_receipts"] is False
    assert printed["sms_template"] == template  # switching off keeps the merchant's text
    assert stored_sms_settings(database) == (0, template)


def test_an_unknown_merchant_is_invalid_input(
    database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = update(capsys, "mer_doesnotexist", "--sms-receipts", "on")

    assert code == 2
    assert out == ""
    assert err == "error: no merchant mer_doesnotexist\n"


@pytest.mark.parametrize(
    "template",
    [
        "Paid {amount}, thanks {payer}",  # unknown placeholder
        "Paid {amount} \U0001f389",  # not GSM-7
        "Paid {amount} " + "x" * 160,  # longer than one SMS once filled
    ],
    ids=["unknown placeholder", "not GSM-7", "too long"],
)
def test_an_invalid_template_is_refused_in_one_line_and_nothing_changes(
    database: Path, merchant_id: str, capsys: pytest.CaptureFixture[str], template: str
) -> None:
    code, out, err = update(capsys, merchant_id, "--sms-receipts", "on", "--sms-template", template)

    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert stored_sms_settings(database) == (0, None)


def test_neither_flag_is_a_usage_error(
    database: Path, merchant_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["merchants", "update", merchant_id])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ")
    assert "--sms-receipts" in err


def test_sms_receipts_takes_on_or_off_only(
    database: Path, merchant_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["merchants", "update", merchant_id, "--sms-receipts", "yes"])

    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err

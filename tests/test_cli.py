"""``momo-gateway merchants create`` prints the keys once and stores the API key hashed."""

from __future__ import annotations

import json
import sqlite3

from app.cli import main
from app.merchants.service import hash_api_key


def test_merchants_create_prints_credentials_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    assert main(["migrate"]) == 0
    capsys.readouterr()

    assert (
        main(
            [
                "merchants",
                "create",
                "--name",
                "Shop",
                "--callback-url",
                "https://shop.example/momo/events",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)

    assert set(printed) == {"id", "api_key", "webhook_secret"}
    assert printed["webhook_secret"].startswith("whsec_")
    with sqlite3.connect(tmp_path / "m.db") as connection:
        (stored_hash,) = connection.execute("SELECT api_key_hash FROM merchants").fetchone()
        dump = "\n".join(connection.iterdump())
    assert stored_hash == hash_api_key(printed["api_key"])
    assert printed["api_key"] not in dump


def test_merchants_create_refuses_a_non_http_callback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    main(["migrate"])
    assert main(["merchants", "create", "--name", "Shop", "--callback-url", "ftp://x"]) == 2
    assert "http" in capsys.readouterr().err

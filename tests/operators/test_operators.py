"""Operators (both backends): Argon2id passwords, creating, disabling, resetting, logging in,
who may act, and the audit entry each change leaves."""

from __future__ import annotations

import logging

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from app.db import create_engine, create_sessionmaker
from app.operators.audit import SecretInAuditDetail, list_actions, record_action
from app.operators.models import Operator, OperatorAction
from app.operators.passwords import (
    WeakPassword,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from app.operators.service import (
    InvalidEmail,
    InvalidRole,
    OperatorExists,
    OperatorNotAllowed,
    UnknownOperator,
    authenticate,
    create_operator,
    disable_operator,
    list_operators,
    operator_for_action,
    operator_json,
    reset_password,
)


@pytest.fixture
async def sessions(clean_db):
    engine = create_engine(clean_db)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def admin(sessions):
    created, _ = await create_operator(sessions, "root@gateway.example", "admin")
    return created


async def audit_of(sessions, operator_id):
    return await list_actions(sessions, target_type="operator", target_id=operator_id)


# Passwords, pure.


def test_hashes_are_argon2id_and_verify_only_the_right_password():
    password = generate_password()
    hashed = hash_password(password)

    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert password not in hashed
    assert verify_password(hashed, password)
    assert not verify_password(hashed, password + "x")
    assert not verify_password("not a hash", password)
    assert hash_password(password) != hashed  # salted
    assert not needs_rehash(hashed)
    assert needs_rehash(PasswordHasher(time_cost=1, memory_cost=8192).hash(password))


def test_generated_passwords_are_long_and_random():
    first, second = generate_password(), generate_password()
    assert len(first) >= 20
    assert first != second


@pytest.mark.parametrize("weak", ["", "short", "elevenchars", " " * 12])
def test_weak_passwords_are_refused(weak):
    with pytest.raises(WeakPassword):
        hash_password(weak)


# Operators.


async def test_create_normalises_the_email_and_logs_in_with_the_password(sessions):
    created, password = await create_operator(sessions, "  Alice@Example.UG ", "admin")

    assert created.email == "alice@example.ug"
    assert created.role == "admin"
    assert created.password_hash.startswith("$argon2id$")
    assert len(password) >= 12
    logged_in = await authenticate(sessions, "ALICE@example.ug ", password)
    assert logged_in is not None
    assert logged_in.id == created.id
    assert await authenticate(sessions, "alice@example.ug", password + "!") is None
    assert await authenticate(sessions, "nobody@example.ug", password) is None
    assert await authenticate(sessions, "not an email", password) is None

    shown = operator_json(created)
    assert shown["email"] == "alice@example.ug"
    assert shown["disabled"] is False
    assert "password_hash" not in shown
    assert created.password_hash not in str(shown)
    assert [operator.id for operator in await list_operators(sessions)] == [created.id]

    (entry,) = await audit_of(sessions, created.id)
    assert (entry.action, entry.actor, entry.source) == ("operator.create", "cli", "cli")
    assert entry.detail == {
        "email": "alice@example.ug",
        "role": "admin",
        "password_generated": True,
    }
    assert entry.operator_id is None


async def test_a_given_password_is_used_and_a_weak_one_refused(sessions):
    created, password = await create_operator(
        sessions, "bob@example.ug", password="correct horse battery"
    )
    assert password == "correct horse battery"
    assert created.role == "viewer"
    assert await authenticate(sessions, "bob@example.ug", "correct horse battery") is not None

    with pytest.raises(WeakPassword, match="at least 12"):
        await create_operator(sessions, "carol@example.ug", password="hunter2")
    assert [operator.email for operator in await list_operators(sessions)] == ["bob@example.ug"]


async def test_a_duplicate_email_is_refused_whatever_its_case(sessions):
    await create_operator(sessions, "dana@example.ug")
    with pytest.raises(OperatorExists, match=r"dana@example\.ug already exists"):
        await create_operator(sessions, " DANA@example.UG", "admin")
    assert len(await list_operators(sessions)) == 1


@pytest.mark.parametrize("email", ["dana", "dana@example", "da na@example.ug", "@example.ug", ""])
async def test_an_invalid_email_is_refused(sessions, email):
    with pytest.raises(InvalidEmail):
        await create_operator(sessions, email)


async def test_an_unknown_role_is_refused(sessions):
    with pytest.raises(InvalidRole, match="viewer, admin"):
        await create_operator(sessions, "erin@example.ug", "owner")


async def test_a_disabled_operator_cannot_log_in_or_act(sessions, admin):
    created, password = await create_operator(sessions, "frank@example.ug", "admin")
    assert (await operator_for_action(sessions, "frank@example.ug")).id == created.id

    disabled = await disable_operator(
        sessions, "Frank@example.ug", operator=admin, source="192.0.2.10"
    )

    assert disabled.disabled_at is not None
    assert await authenticate(sessions, "frank@example.ug", password) is None
    with pytest.raises(OperatorNotAllowed, match="disabled"):
        await operator_for_action(sessions, "frank@example.ug")
    entry = (await audit_of(sessions, created.id))[0]
    assert entry.action == "operator.disable"
    assert (entry.operator_id, entry.actor, entry.source) == (
        admin.id,
        "root@gateway.example",
        "192.0.2.10",
    )
    # By id too; disabling again keeps the first time.
    again = await disable_operator(sessions, created.id)
    assert again.disabled_at == disabled.disabled_at
    with pytest.raises(UnknownOperator):
        await disable_operator(sessions, "nobody@example.ug")


async def test_reset_password_replaces_the_old_one(sessions, admin):
    created, old = await create_operator(sessions, "gina@example.ug")

    new = await reset_password(sessions, "gina@example.ug", actor="ops-script")

    assert new != old
    assert len(new) >= 12
    assert await authenticate(sessions, "gina@example.ug", old) is None
    assert await authenticate(sessions, "gina@example.ug", new) is not None
    chosen = await reset_password(sessions, created.id, "a long chosen password")
    assert chosen == "a long chosen password"
    assert await authenticate(sessions, "gina@example.ug", chosen) is not None
    with pytest.raises(WeakPassword):
        await reset_password(sessions, created.id, "short")
    assert await authenticate(sessions, "gina@example.ug", chosen) is not None
    with pytest.raises(UnknownOperator):
        await reset_password(sessions, "op_nope")

    actions = [(entry.action, entry.actor) for entry in await audit_of(sessions, created.id)]
    assert actions == [
        ("operator.reset_password", "cli"),
        ("operator.reset_password", "ops-script"),
        ("operator.create", "cli"),
    ]


async def test_only_an_enabled_admin_may_act(sessions, admin):
    await create_operator(sessions, "hana@example.ug", "viewer")

    assert (await operator_for_action(sessions, " ROOT@gateway.example")).id == admin.id
    with pytest.raises(OperatorNotAllowed, match="viewer; an admin is required"):
        await operator_for_action(sessions, "hana@example.ug")
    with pytest.raises(OperatorNotAllowed, match="no operator"):
        await operator_for_action(sessions, "ivan@example.ug")
    with pytest.raises(OperatorNotAllowed, match="no operator"):
        await operator_for_action(sessions, "ivan")


async def test_a_hash_with_old_parameters_is_upgraded_at_login(sessions):
    created, password = await create_operator(sessions, "jo@example.ug", "admin")
    old_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(password)
    async with sessions.begin() as session:
        await session.execute(
            update(Operator).where(Operator.id == created.id).values(password_hash=old_hash)
        )

    assert await authenticate(sessions, "jo@example.ug", password) is not None

    async with sessions() as session:
        stored = await session.get(Operator, created.id)
    assert stored.password_hash != old_hash
    assert stored.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await authenticate(sessions, "jo@example.ug", password) is not None


async def test_no_password_or_hash_reaches_the_logs(sessions, json_logs):
    # Statements logged with their parameters would show both: the engine hides them. The
    # driver's own DEBUG lines do not, which is why configure_logging keeps aiosqlite at WARNING
    # whatever LOG_LEVEL says; the same here.
    engine_logger, driver_logger = (
        logging.getLogger("sqlalchemy.engine"),
        logging.getLogger("aiosqlite"),
    )
    previous = engine_logger.level, driver_logger.level
    engine_logger.setLevel(logging.INFO)
    driver_logger.setLevel(logging.WARNING)
    try:
        created, password = await create_operator(sessions, "kim@example.ug", "admin")
        chosen = "kim's own long password"
        await reset_password(sessions, created.id, chosen)
        await authenticate(sessions, "kim@example.ug", chosen)
        await authenticate(sessions, "kim@example.ug", "a wrong password!")
        async with sessions() as session:
            stored = await session.get(Operator, created.id)
    finally:
        engine_logger.setLevel(previous[0])
        driver_logger.setLevel(previous[1])

    logged = json_logs.getvalue()
    assert "INSERT INTO operators" in logged  # the statements were logged
    for secret in (password, chosen, created.password_hash, stored.password_hash, "$argon2"):
        assert secret not in logged


# The audit log.


async def test_an_audit_entry_commits_or_vanishes_with_its_transaction(clean_db, sessions, admin):
    engine = create_engine(clean_db)
    try:
        async with engine.begin() as connection:
            kept = await record_action(
                connection,
                operator=admin,
                actor=admin.email,
                action="payment.resolve",
                target_type="payment",
                target_id="pay_1",
                source="cli",
                detail={"status": "successful", "note": "confirmed with MTN"},
            )

        async def a_resolution_that_fails():
            async with engine.begin() as connection:
                await record_action(
                    connection,
                    operator=None,
                    actor="cli",
                    action="payment.resolve",
                    target_type="payment",
                    target_id="pay_2",
                    source="cli",
                    detail={},
                )
                raise RuntimeError("the status change failed")

        with pytest.raises(RuntimeError):
            await a_resolution_that_fails()
    finally:
        await engine.dispose()

    (entry,) = await list_actions(sessions, target_type="payment")
    assert entry.id == kept
    assert (entry.target_id, entry.operator_id, entry.detail["note"]) == (
        "pay_1",
        admin.id,
        "confirmed with MTN",
    )
    assert await list_actions(sessions, target_type="payment", target_id="pay_2") == []
    newest_first = [entry.action for entry in await list_actions(sessions, limit=2)]
    assert newest_first == ["payment.resolve", "operator.create"]


@pytest.mark.parametrize(
    "detail",
    [
        {"password": "whatever"},
        {"new": {"api_key": "x"}},
        {"webhook_secret": "x"},
        {"value": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        {"value": "mgw_" + "a" * 43},
        {"values": ["$argon2id$v=19$m=65536,t=3,p=4$abc$def"]},
    ],
)
async def test_an_audit_detail_with_a_secret_is_refused(sessions, detail):
    async with sessions.begin() as session:
        with pytest.raises(SecretInAuditDetail):
            await record_action(
                session,
                operator=None,
                actor="cli",
                action="merchant.rotate_key",
                target_type="merchant",
                target_id="mer_1",
                source="cli",
                detail=detail,
            )
    assert await list_actions(sessions) == []


async def test_postgresql_refuses_to_change_or_delete_an_audit_entry(clean_pg):
    engine = create_engine(clean_pg)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            entry_id = await record_action(
                session,
                operator=None,
                actor="cli",
                action="merchant.disable",
                target_type="merchant",
                target_id="mer_1",
                source="cli",
                detail={},
            )
        for statement in (
            update(OperatorAction).where(OperatorAction.id == entry_id).values(actor="someone"),
            text("DELETE FROM operator_actions"),
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as connection:
                    await connection.execute(statement)
        (entry,) = await list_actions(sessions)
        assert entry.actor == "cli"
    finally:
        await engine.dispose()

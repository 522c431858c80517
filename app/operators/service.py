"""Operators: creating them, switching them off, resetting passwords, logging in, and deciding
who may act. The CLI and the console both call these.

    ValueError
    ├── InvalidEmail          not roughly ``name@domain.tld``
    ├── InvalidRole           neither ``viewer`` nor ``admin``
    ├── OperatorExists        that email already has an operator
    └── WeakPassword          a given password shorter than 12 characters (app.operators.passwords)
    LookupError
    └── UnknownOperator       no operator with that email or id
    PermissionError
    └── OperatorNotAllowed    unknown, disabled or a viewer: only an enabled admin acts

Each change writes its audit entry in the same transaction. Passwords are hashed in a thread
(Argon2id is slow on purpose) and never logged, audited or kept.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import new_id, utcnow
from app.operators.audit import record_action
from app.operators.models import Operator
from app.operators.passwords import (
    WeakPassword,
    check_password_strength,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)

__all__ = [
    "ADMIN",
    "ROLES",
    "VIEWER",
    "InvalidEmail",
    "InvalidRole",
    "OperatorExists",
    "OperatorNotAllowed",
    "UnknownOperator",
    "WeakPassword",
    "authenticate",
    "create_operator",
    "disable_operator",
    "get_operator",
    "list_operators",
    "normalise_email",
    "operator_for_action",
    "operator_json",
    "reset_password",
]

VIEWER: Final = "viewer"
ADMIN: Final = "admin"
ROLES: Final = (VIEWER, ADMIN)

# Roughly x@y.z: one @, no spaces, a dot in the domain. Deliverability is the mail server's call.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


class InvalidEmail(ValueError):
    pass


class InvalidRole(ValueError):
    pass


class OperatorExists(ValueError):
    pass


class UnknownOperator(LookupError):
    pass


class OperatorNotAllowed(PermissionError):
    """The named operator may not act: unknown, disabled, or only a viewer."""


def normalise_email(email: str) -> str:
    """``email`` stripped and lower-cased, or InvalidEmail."""
    normal = email.strip().lower()
    if len(normal) > 254 or not _EMAIL.match(normal):
        raise InvalidEmail(f"not an email address: {email.strip()[:254]!r}")
    return normal


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRole(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def operator_json(operator: Operator) -> dict[str, Any]:
    """What may be shown of an operator (never the password hash), JSON-ready."""
    return {
        "id": operator.id,
        "email": operator.email,
        "role": operator.role,
        "disabled": operator.disabled_at is not None,
        "created_at": _iso(operator.created_at),
        "password_changed_at": _iso(operator.password_changed_at),
        "disabled_at": _iso(operator.disabled_at) if operator.disabled_at else None,
    }


def _iso(at: Any) -> str:
    return str(at.isoformat().replace("+00:00", "Z"))


def _actor(actor: str | None, operator: Operator | None) -> str:
    if actor is not None:
        return actor
    return operator.email if operator is not None else "cli"


async def create_operator(
    sessions: async_sessionmaker[AsyncSession],
    email: str,
    role: str = VIEWER,
    password: str | None = None,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
) -> tuple[Operator, str]:
    """A new operator and its password: ``password`` if given (WeakPassword if too short), else
    a generated one, to be shown once. OperatorExists if the email is taken (in any case)."""
    normal = normalise_email(email)
    _check_role(role)
    generated = password is None
    generated = password is None
    if password is None:
        password = generate_password()
    else:
        check_password_strength(password)
    password_hash = await asyncio.to_thread(hash_password, password)
    now = utcnow()
    created = Operator(
        id=new_id("op"),
        email=normal,
        role=role,
        password_hash=password_hash,
        created_at=now,
        password_changed_at=now,
    )
    try:
        async with sessions.begin() as session:
            if await _by_email(session, normal) is not None:
                raise OperatorExists(f"an operator with email {normal} already exists")
            session.add(created)
            await record_action(
                session,
                operator=operator,
                actor=_actor(actor, operator),
                action="operator.create",
                target_type="operator",
                target_id=created.id,
                source=source,
                detail={"email": normal, "role": role, "password_generated": generated},
            )
    except IntegrityError:  # created meanwhile by someone else
        raise OperatorExists(f"an operator with email {normal} already exists") from None
    return created, password


async def list_operators(sessions: async_sessionmaker[AsyncSession]) -> Sequence[Operator]:
    """Every operator, oldest first (disabled ones included)."""
    async with sessions() as session:
        return (await session.scalars(select(Operator).order_by(Operator.created_at))).all()


async def get_operator(sessions: async_sessionmaker[AsyncSession], email_or_id: str) -> Operator:
    async with sessions() as session:
        return await _find(session, email_or_id)


async def disable_operator(
    sessions: async_sessionmaker[AsyncSession],
    email_or_id: str,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
) -> Operator:
    """Switch an operator off: it can no longer log in or act. Disabling twice keeps the first
    time. UnknownOperator if there is none."""
    async with sessions.begin() as session:
        target = await _find(session, email_or_id, for_update=True)
        already = target.disabled_at is not None
        if not already:
            target.disabled_at = utcnow()
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="operator.disable",
            target_type="operator",
            target_id=target.id,
            source=source,
            detail={"email": target.email, "already_disabled": already},
        )
    return target


async def reset_password(
    sessions: async_sessionmaker[AsyncSession],
    email_or_id: str,
    password: str | None = None,
    *,
    actor: str | None = None,
    source: str = "cli",
    operator: Operator | None = None,
) -> str:
    """Give an operator a new password (``password``, or a generated one) and return it. It does
    not switch a disabled operator back on. UnknownOperator, WeakPassword."""
    if password is None:
        password = generate_password()
        generated = True
    else:
        check_password_strength(password)
        generated = False
    password_hash = await asyncio.to_thread(hash_password, password)
    async with sessions.begin() as session:
        target = await _find(session, email_or_id, for_update=True)
        target.password_hash = password_hash
        target.password_changed_at = utcnow()
        await record_action(
            session,
            operator=operator,
            actor=_actor(actor, operator),
            action="operator.reset_password",
            target_type="operator",
            target_id=target.id,
            source=source,
            detail={"email": target.email, "password_generated": generated},
        )
    return password


@functools.cache
def _decoy_hash() -> str:
    # Checked when no operator has the email, so an unknown email costs as long as a wrong
    # password and a login form does not tell which emails exist.
    return hash_password(generate_password())


async def authenticate(
    sessions: async_sessionmaker[AsyncSession], email: str, password: str
) -> Operator | None:
    """The operator whose email and password these are, or None (unknown, wrong password, or
    disabled). A hash made with older parameters is replaced on success. Recording the login
    (with its address) is the caller's: it knows where the request came from."""
    try:
        normal = normalise_email(email)
    except InvalidEmail:
        normal = None
    found = None
    if normal is not None:
        async with sessions() as session:
            found = await _by_email(session, normal)
    stored = found.password_hash if found is not None else await asyncio.to_thread(_decoy_hash)
    matches = await asyncio.to_thread(verify_password, stored, password)
    if found is None or not matches or found.disabled_at is not None:
        return None
    if needs_rehash(found.password_hash):
        await _rehash(sessions, found, password)
    return found


async def _rehash(
    sessions: async_sessionmaker[AsyncSession], operator: Operator, password: str
) -> None:
    try:
        new_hash = await asyncio.to_thread(hash_password, password)
    except WeakPassword:
        return  # an old short password still logs in; a reset is what changes it
    async with sessions.begin() as session:
        stored = await session.get(Operator, operator.id, with_for_update=True)
        if stored is not None and stored.password_hash == operator.password_hash:
            stored.password_hash = new_hash
    operator.password_hash = new_hash


async def operator_for_action(sessions: async_sessionmaker[AsyncSession], email: str) -> Operator:
    """The enabled admin named by ``email`` (the CLI's ``--operator``), or OperatorNotAllowed
    saying why not: no such operator, disabled, or a viewer."""
    try:
        normal = normalise_email(email)
    except InvalidEmail:
        raise OperatorNotAllowed(f"no operator with email {email.strip()[:254]!r}") from None
    async with sessions() as session:
        found = await _by_email(session, normal)
    if found is None:
        raise OperatorNotAllowed(f"no operator with email {normal}")
    if found.disabled_at is not None:
        raise OperatorNotAllowed(f"operator {normal} is disabled")
    if found.role != ADMIN:
        raise OperatorNotAllowed(
            f"operator {normal} is a {found.role}; an admin is required to act"
        )
    return found


async def _by_email(session: AsyncSession, normal_email: str) -> Operator | None:
    return await session.scalar(select(Operator).where(Operator.email == normal_email))


async def _find(session: AsyncSession, email_or_id: str, *, for_update: bool = False) -> Operator:
    if "@" in email_or_id:
        try:
            query = select(Operator).where(Operator.email == normalise_email(email_or_id))
        except InvalidEmail:
            raise UnknownOperator(email_or_id) from None
    else:
        query = select(Operator).where(Operator.id == email_or_id.strip())
    if for_update:
        query = query.with_for_update()
    found = await session.scalar(query)
    if found is None:
        raise UnknownOperator(email_or_id)
    return found

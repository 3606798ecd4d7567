"""API tokens: random, shown once, stored as SHA-256; sent as ``Authorization: Bearer`` or, from
the browser after logging in, as an HttpOnly SameSite=Strict cookie (which is also why a page on
another site cannot make a logged-in browser post to this one)."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from nospy.errors import InputError
from nospy.server.db import Token

__all__ = ["COOKIE", "create_token", "lookup", "revoke_token"]

COOKIE = "nospy_token"
_PREFIX = "nospy_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(sessions: sessionmaker[Session], name: str) -> str:
    """A new token named ``name``; the token itself is returned once and never stored."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name):
        raise InputError("token name: 1-128 letters, digits, '.', '_' or '-'")
    token = _PREFIX + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        if session.scalars(select(Token).where(Token.name == name)).first() is not None:
            raise InputError(f"a token named {name!r} exists already")
        session.add(Token(name=name, sha256=_digest(token)))
    return token


def lookup(session: Session, token: str | None) -> str | None:
    """The name of the token, or None when it is missing or unknown."""
    if not token or len(token) > 256:
        return None
    return session.scalars(select(Token.name).where(Token.sha256 == _digest(token))).first()


def revoke_token(sessions: sessionmaker[Session], name: str) -> None:
    """Delete the token named ``name``: requests carrying it are refused from now on."""
    with sessions.begin() as session:
        if session.execute(delete(Token).where(Token.name == name)).rowcount != 1:  # type: ignore[attr-defined]
            raise InputError(f"no token named {name!r}")

"""Who may do what: bearer tokens with scopes, checked on every ``/v1`` request.

* No token exists and the server listens on loopback only: every local request is allowed (a
  single user's machine; :func:`check_bind` refuses any other interface until a token exists).
* Otherwise every ``/v1`` request needs ``Authorization: Bearer <token>``: 401 without one or
  with an unknown one, 403 when its scope is too small for the endpoint.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from fastapi import Request

from dissensus.analytics.api.errors import ApiError
from dissensus.analytics.api.tokens import TokenRecord, TokenStore, scope_allows
from dissensus.warehouse.errors import DissensusError

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can reach it)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: may resolve to any interface


def check_bind(host: str, store: TokenStore) -> None:
    """Refuse a non-loopback ``host`` while no token exists: the API would be open to all."""
    if is_loopback(host) or store.records():
        return
    raise DissensusError(
        f"Refusing to listen on {host}: no API token exists, so anyone who can reach this "
        "address could read and write the warehouse.",
        where="dissensus api --host",
        expected="--host 127.0.0.1 (the default), or a token made first",
        fix="run `dissensus api token create --scope admin` (and give clients tokens of the "
        "scope they need), then start the API again",
    )


def _unauthorised(message: str, fix: str) -> ApiError:
    return ApiError(401, "unauthorised", message, expected="Authorization: Bearer <token>",
                    fix=fix, headers={"WWW-Authenticate": "Bearer"})


def require(scope: str) -> Callable[[Request], TokenRecord | None]:
    """A FastAPI dependency allowing requests whose token has at least ``scope``."""

    def check(request: Request) -> TokenRecord | None:
        store: TokenStore = request.app.state.tokens
        records = store.records()
        if not records and not request.app.state.public:
            return None  # loopback only, no tokens: a local single-user server
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if not header:
            raise _unauthorised(
                f"{request.method} {request.url.path} needs a token (scope '{scope}' or higher) "
                "and the request has none.",
                "send `Authorization: Bearer <token>`; an admin makes one with `dissensus api "
                f"token create --scope {scope}`")
        if kind.lower() != "bearer" or not token.strip():
            raise _unauthorised(
                f"The Authorization header is not a bearer token (it starts with {kind!r:.20}).",
                "send `Authorization: Bearer <token>`")
        record = store.verify(token.strip())
        if record is None:
            raise _unauthorised(
                "The token is not known to this server (mistyped, or revoked).",
                "check the token, or ask an admin for a new one (`dissensus api token "
                "create`)")
        if not scope_allows(record.scope, scope):
            raise ApiError(403, "forbidden",
                           f"{request.method} {request.url.path} needs scope '{scope}'; token "
                           f"{record.token_id} has scope '{record.scope}'.",
                           expected=f"a token of scope '{scope}' or higher",
                           fix=f"use a token made with `dissensus api token create --scope "
                           f"{scope}`")
        return record

    return check

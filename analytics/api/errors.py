"""Every error the API answers is JSON a person can act on, never a traceback.

The shape is ``{"error": {"code", "message", "where", "expected", "fix"}}``, the same four parts
as :class:`dissensus.warehouse.errors.DissensusError` on the command line. The handlers here turn
the library's errors, FastAPI's validation errors and anything unexpected into that shape.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dissensus.warehouse.errors import (
    DatabaseBusyError,
    DissensusError,
    EmptyDataError,
    PseudonymisationError,
    WarehouseWriteError,
)

log = logging.getLogger("dissensus.api")


class ApiError(Exception):
    """An answer other than 2xx, with the parts of an error in words."""

    def __init__(self, status: int, code: str, message: str, *, where: str | None = None,
                 expected: str | None = None, fix: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.where, self.expected, self.fix = where, expected, fix
        self.headers = headers

    def response(self) -> JSONResponse:
        """The JSON answer."""
        body = {"code": self.code, "message": self.message, "where": self.where,
                "expected": self.expected, "fix": self.fix}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


def _status_of(error: DissensusError) -> int:
    if isinstance(error, EmptyDataError):
        return 404
    if isinstance(error, PseudonymisationError):
        return 409
    if isinstance(error, DatabaseBusyError | WarehouseWriteError):
        return 503
    return 422  # the request is understood but cannot be served as asked


def from_dissensus(error: DissensusError) -> ApiError:
    """A library error (what / where / expected / fix) as an API error."""
    name = type(error).__name__.removesuffix("Error") or "Dissensus"
    code = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()  # EmptyData -> empty_data
    return ApiError(_status_of(error), code, error.what, where=error.where,
                    expected=error.expected, fix=error.fix)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error its JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(DissensusError)
    async def dissensus_error(_: Request, error: DissensusError) -> JSONResponse:
        return from_dissensus(error).response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            + (f" (got {e['input']!r:.80})" if e.get("input") is not None else "")
            for e in error.errors()
        )
        return ApiError(422, "invalid_request", f"The request is not valid: {problems}.",
                        expected="the parameters and body described at /docs",
                        fix="correct the values named above").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 404:
            return ApiError(404, "not_found", f"There is no endpoint {request.url.path}.",
                            expected="a path listed at /docs (all under /v1)",
                            fix="check the path and the API version").response()
        if error.status_code == 405:
            return ApiError(405, "method_not_allowed",
                            f"{request.method} is not allowed on {request.url.path}.",
                            expected="a method listed for this path at /docs",
                            fix="use the method the docs give").response()
        return ApiError(error.status_code, "http_error", str(error.detail)).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return ApiError(500, "internal_error",
                        f"The server failed on {request.method} {request.url.path}: "
                        f"{type(error).__name__}.",
                        fix="nothing half-done was stored (writes are transactions); retry, and "
                        "report it with the server's log if it persists").response()

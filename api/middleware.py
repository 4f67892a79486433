"""What every request passes before a route sees it, and every answer on its way out.

- :class:`Guard`: refuses before any work a request with NUL bytes in its path or query, a
  write (POST, PUT, PATCH, DELETE) without a valid API key or with a key whose role the route
  does not admit, and a body over its route's limit (``Content-Length`` checked at once, a
  streamed body counted as it arrives). So a 200 MB anonymous body is a 401 before a byte of it
  is read, and a 200 MB JSON body with a key a 413 after 1 MB.
- :class:`SecurityHeaders`: ``X-Content-Type-Options``, ``Referrer-Policy`` and
  ``X-Frame-Options`` on every answer, and on HTML a strict ``Content-Security-Policy`` whose
  script nonce is added to each of the page's own ``<script>`` tags.
- :class:`AccessLog`: one line per request (method, path, status, duration, key id; never a
  key, never a query string, which may carry personal data) and an ``X-Request-Id``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette._utils import get_route_path
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import DATABASE_AWAY, RETRY_AFTER, problem
from geo.access.audit import REQUEST_ID
from geo.access.keys import authenticate
from geo.access.principals import AuthenticationFailed, PermissionDenied

access_log = logging.getLogger("connectivity.access")
log = logging.getLogger("connectivity.api")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _send_problem(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with :func:`api.errors.problem` before the app (or in its stead)."""
    await problem(status, detail, headers)(scope, _nothing_more, send)


async def _nothing_more() -> Message:
    return {"type": "http.disconnect"}


def _holds_nul(scope: Scope) -> bool:
    """Whether the request's path or query holds a NUL byte, raw or percent-encoded."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (
        b"%00" in raw_path
        or b"\x00" in raw_path
        or b"%00" in query
        or b"\x00" in query
        or "\x00" in scope["path"]
    )


def _length_refusal(declared: str | None, limit: int) -> tuple[int, str] | None:
    """The status and detail refusing a declared ``Content-Length``; None when there is none or it fits."""
    if declared is None:
        return None
    if not re.fullmatch(r"[0-9]{1,18}", declared.strip()):
        return 400, f"Content-Length: {declared[:40]!r} is not a number of bytes"
    if int(declared) > limit:
        return 413, f"the request body is {int(declared):,} bytes, more than the limit of {limit:,}"
    return None


class Guard:
    """NUL bytes, authentication, roles and body size, all before the body is read.

    ``body_limit(scope)`` gives the largest body the request's route takes. Roles come from the
    route itself: :class:`api.deps.RequireRoles` dependencies name them, so one declaration is
    enforced here, before the body, and again by the dependency.
    """

    def __init__(self, app: ASGIApp, body_limit: Callable[[Scope], int]) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on with its body counted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _holds_nul(scope):
            await _send_problem(scope, send, 400, "the request's path or query holds a NUL byte (%00)")
            return
        limit = self.body_limit(scope)
        declared = Headers(scope=scope).get("content-length")
        if scope["method"] in WRITES and not await self._admit(scope, send):
            return
        refusal = _length_refusal(declared, limit)
        if refusal is not None:
            await _send_problem(scope, send, *refusal)
            return
        await self._pass_counted(scope, receive, send, limit)

    async def _admit(self, scope: Scope, send: Send) -> bool:
        """Keep a write's principal in the scope; False when it is refused (the answer is sent)."""
        try:
            principal = await self._caller(scope)
        except AuthenticationFailed as exc:
            await _send_problem(scope, send, 401, str(exc))
            return False
        except PermissionDenied as exc:
            await _send_problem(scope, send, 403, str(exc))
            return False
        except (psycopg.OperationalError, PoolTimeout):
            await _send_problem(scope, send, 503, DATABASE_AWAY, {"Retry-After": RETRY_AFTER})
            return False
        scope.setdefault("state", {})["principal"] = principal
        return True

    async def _pass_counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app with the body counted as it arrives: past ``limit`` the answer is a 413."""
        received = 0
        started = over = False

        async def watched(message: Message) -> None:
            nonlocal started
            if over:
                return  # the 413 is the answer: whatever the app makes of the cut body is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def counted() -> Message:
            # Past the limit the answer is sent here, once, and the app is told the client left
            # (raising instead would reach the app's body parser, which turns errors into a 400).
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    if not started:
                        await _send_problem(
                            scope, send, 413, f"the request body is more than the limit of {limit:,} bytes"
                        )
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, counted, watched)
        except Exception:
            # Answered here, inside the other middlewares, so a 500 has the security headers and
            # a request id like every answer (Starlette's own handler answers outside them all).
            log.exception("unexpected error in %s %s", scope["method"], get_route_path(scope))
            if started:
                raise
            await _send_problem(scope, send, 500, "an unexpected error occurred; it has been logged")

    async def _caller(self, scope: Scope) -> Any:
        """The principal of a write: a valid key whose role the route admits."""
        from api.deps import parse_bearer, pooled

        key = parse_bearer(Headers(scope=scope).get("authorization"))
        if key is None:
            raise AuthenticationFailed("this needs an API key: send 'Authorization: Bearer <key>'")
        app = scope["app"]
        async with pooled(app) as conn:
            principal = await authenticate(conn, key)
        roles = _route_roles(app, scope)
        if roles:
            principal.require_role(*roles)  # type: ignore[arg-type]
        return principal


RouteRoles = list[tuple[re.Pattern[str], frozenset[str], tuple[str, ...]]]


def declared_roles(dependant: Any) -> tuple[str, ...]:
    """The roles a route's :class:`api.deps.RequireRoles` dependency admits (empty: none declared)."""
    stack = [dependant]
    while stack:
        node = stack.pop()
        roles = getattr(node.call, "roles", None)
        if roles:
            return tuple(roles)
        stack.extend(node.dependencies)
    return ()


def route_roles(routes: Any) -> RouteRoles:
    """``(path pattern, methods, roles)`` of every API route, for :class:`Guard`."""
    return [
        (route.path_regex, frozenset(route.methods or ()), declared_roles(route.dependant))
        for route in routes
        if hasattr(route, "dependant")
    ]


def _route_roles(app: Any, scope: Scope) -> tuple[str, ...]:
    """The roles declared by the route that ``scope`` reaches (none: any valid key)."""
    path = get_route_path(scope)
    for pattern, methods, roles in getattr(app.state, "route_roles", ()):
        if scope["method"] in methods and pattern.match(path):
            return roles
    return ()


_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])")


class SecurityHeaders:
    """Headers that keep browsers strict, and a nonce-based Content-Security-Policy on HTML."""

    def __init__(self, app: ASGIApp, image_sources: tuple[str, ...] = ()) -> None:
        self.app = app
        self.image_sources = " ".join(image_sources)

    def policy(self, nonce: str) -> str:
        """The Content-Security-Policy of an HTML page: only the app's own files and its nonce'd scripts."""
        images = f"'self' data: blob: {self.image_sources}".strip()
        return (
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
            f"img-src {images}; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request; add the headers to its answer (and the nonce to an HTML body)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def secured(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if kind.startswith(b"text/html"):
                    start = message  # held until the body is complete, to add the nonce
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            nonce = secrets.token_urlsafe(16)
            body = _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', b"".join(chunks))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers += [
                (b"content-length", str(len(body)).encode()),
                (b"content-security-policy", self.policy(nonce).encode()),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, secured)


_OURS = {b"x-content-type-options", b"referrer-policy", b"x-frame-options", b"content-security-policy"}


class AccessLog:
    """One log line per request, and its ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request and log it when its answer starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, logged)
        finally:
            principal = scope.get("state", {}).get("principal")
            client = scope.get("client") or ("-", 0)
            access_log.info(
                "%s %s %s %s %d %.1fms key=%s",
                request_id, client[0], scope["method"], scope["path"], status,
                (time.perf_counter() - started) * 1000,
                getattr(principal, "key_id", None) or "-",
            )  # fmt: skip

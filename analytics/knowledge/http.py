"""The knowledge server over streamable HTTP, behind the REST API's token check.

Every HTTP request must carry `Authorization: Token <API token>` (knox, exactly as the REST API;
`Bearer <API token>` is taken too, the form most MCP clients send); without one, or with one that
is unknown, expired or revoked, the answer is 401 in the REST API's error shape and the MCP app
never sees the request. Stateless: each POST stands alone (no session to pin to one process),
answered as plain JSON.
"""

import uvicorn
from asgiref.sync import sync_to_async
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import InvalidToken, user_for_token
from .server import RequestCaller, build_server, close_stale_connection

PATH = "/mcp"
SCHEMES = ("token", "bearer")


def _authentication_failed(code: str, detail: str) -> JSONResponse:
    body = {"type": "client_error", "errors": [{"code": code, "detail": detail, "attr": None}]}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Token"})


def _credentials(scope: Scope) -> str | None:
    """The token of an `Authorization: Token …` (or `Bearer …`) header; None without one."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").strip().partition(" ")
    return token.strip() if scheme.lower() in SCHEMES and token.strip() else None


def _authenticate(token: str) -> tuple[int, str] | None:
    close_stale_connection()
    try:
        user, key = user_for_token(token)
    except InvalidToken:
        return None
    finally:
        close_stale_connection()
    return user.pk, key


class TokenAuthMiddleware:
    """401 for an HTTP request without a valid API token; otherwise the request goes on with the
    SDK's AuthenticatedUser in `scope["user"]` (subject: the user id; client: the token's key, so the
    SDK keeps any session to the credential that opened it)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: starts the SDK's session manager
            await self.app(scope, receive, send)
            return
        token = _credentials(scope)
        if token is None:
            await _authentication_failed("not_authenticated", "Authentication credentials were not provided.")(
                scope, receive, send)
            return
        found = await sync_to_async(_authenticate, thread_sensitive=True)(token)
        if found is None:
            await _authentication_failed("authentication_failed", "Invalid token.")(scope, receive, send)
            return
        user_id, key = found
        principal = AuthenticatedUser(AccessToken(token=key, client_id=key, scopes=[], subject=str(user_id)))
        await self.app({**scope, "user": principal, "auth": AuthCredentials([])}, receive, send)


def http_app(*, host: str) -> ASGIApp:
    """The ASGI app: the MCP endpoint at PATH, behind TokenAuthMiddleware. On a loopback `host` the
    SDK also refuses Host headers other than loopback ones (DNS rebinding)."""
    server = build_server(RequestCaller())
    app = server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True, host=host)
    return TokenAuthMiddleware(app)


def serve(*, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    uvicorn.run(http_app(host=host), host=host, port=port, log_level="info", lifespan="on")

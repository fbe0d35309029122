"""Serve the MCP knowledge server (analytics.knowledge): over stdio for one trader, or over
streamable HTTP for every trader that sends an API token."""

import anyio
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analytics.knowledge import http
from analytics.knowledge.auth import InvalidToken, user_for_token
from analytics.knowledge.server import TokenCaller, build_server


class Command(BaseCommand):
    help = ("Serve the read-only MCP knowledge server. stdio: answers as the owner of an API token "
            "(--token or MCP_API_TOKEN). http: every request sends `Authorization: Token <API token>`.")

    def add_arguments(self, parser):
        parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
        parser.add_argument("--token", help="stdio: the API token to answer as (default: MCP_API_TOKEN). "
                                            "Prefer the environment: arguments show up in process lists.")
        parser.add_argument("--host", default="127.0.0.1", help="http: the interface to listen on.")
        parser.add_argument("--port", type=int, default=8765, help="http: the port to listen on.")

    def handle(self, *args, transport, token=None, host, port, **options):
        if transport == "http":
            if token:
                raise CommandError("--token is for stdio: over HTTP each request sends its own API token.")
            http.serve(host=host, port=port)
            return
        token = token or settings.MCP_API_TOKEN
        try:
            user, key = user_for_token(token)
        except InvalidToken as error:  # fail at start, not on the first call
            raise CommandError(f"stdio needs a valid API token (--token or MCP_API_TOKEN): {error}") from None
        # stdout is the protocol's from here on: anything else goes to stderr.
        self.stderr.write(f"MCP knowledge server on stdio for {user.get_username()} (token {key}…).")
        anyio.run(build_server(TokenCaller(token)).run_stdio_async)

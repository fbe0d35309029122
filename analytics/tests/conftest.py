import pytest


def _refuse(constant):
    raise AssertionError(f"{constant} in JSON")


@pytest.fixture
def strict_json():
    """The body parsed so that NaN or Infinity fail the test."""
    import json

    return lambda response: json.loads(response.content, parse_constant=_refuse)


class Knowledge:
    """The MCP knowledge server as one trader sees it, through the SDK's own client, in-process.

    Each method opens a client session on the server and runs it to completion from this (the
    test's) thread: the tools' database work comes back to this thread (asgiref's thread-sensitive
    executor), so it sees the test's rows inside the test's transaction.
    """

    def __init__(self, server):
        self.server = server

    def _session(self, work):
        from asgiref.sync import async_to_sync
        from mcp import Client

        async def run():
            async with Client(self.server) as client:
                return await work(client)

        return async_to_sync(run)()

    def call(self, tool: str, **arguments):
        result = self._session(lambda client: client.call_tool(tool, arguments))
        assert not result.is_error, result.content[0].text
        return result.structured_content

    def refusal(self, tool: str, **arguments) -> str:
        result = self._session(lambda client: client.call_tool(tool, arguments))
        assert result.is_error, result.structured_content
        return result.content[0].text

    def tools(self):
        return self._session(lambda client: client.list_tools()).tools

    def resources(self):
        return self._session(lambda client: client.list_resources()).resources

    def read(self, uri: str):
        return self._session(lambda client: client.read_resource(uri)).contents


@pytest.fixture
def knowledge_as(db):
    """The knowledge server for `user`, authenticated with a fresh API token of theirs (the stdio
    way: one token for the connection)."""
    from knox.models import AuthToken

    from analytics.knowledge.server import TokenCaller, build_server

    def connect(user) -> Knowledge:
        _, token = AuthToken.objects.create(user=user)
        return Knowledge(build_server(TokenCaller(token)))

    return connect

"""The MCP knowledge server: read-only tools over one trader's trades and analytics, for AI agents.

`tools` validates a call's input and delegates to the selectors (serialized by the REST API's own
serializers, so both speak the same numbers); `server` registers them with the MCP SDK and runs
every call as its caller, inside that user's tenant context; `auth` turns an API token into the
caller; `http` puts the server behind the REST API's token check. Started by
`manage.py mcp_server` (stdio or streamable HTTP).

It lives in analytics because it reads both trades and analytics (imports flow analytics ->
trades -> brokers), and it writes nothing.
"""

"""The MCP server: the tools and resources of `tools`, registered with the SDK's MCPServer.

Every tool call runs `call_as`: on one thread (asgiref's thread-sensitive executor, so Django's
connection is never touched from the event loop and the tenant setting is made on the very
connection and transaction that run the queries), authenticated as its caller, inside
`tenancy.acting_as(user)`, and rolled back at the end: the tools only read, and nothing a call
might write by mistake is ever kept. Never the system context.

Who the caller is depends on the transport: a stdio server holds one API token for its whole
life (`TokenCaller`), an HTTP server gets one with every request (`RequestCaller`).
"""

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, connection, transaction
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from tradeoptions import tenancy
from trades.models import TradeStatus

from . import tools
from .auth import InvalidToken, user_for_token

INSTRUCTIONS = (
    "Read-only access to one trader's paper trades on US equity options and their analytics: open "
    "positions with marks, trade history, one trade's full record (context at entry, price history, "
    "audit events, forensic targets), performance, calibration of the scanner's scores, and a "
    "hindsight replay of other exit brackets. Money is in dollars as strings; premiums are per share "
    "(one contract = 100 shares); times are UTC, analytics dates are New York dates. Long lists come "
    "in pages: pass `page` (from 1) and follow `next_page`."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
DATASET_COLUMNS_URI = "tradeoptions://dataset/columns"
DATASET_DOCS_URI = "tradeoptions://dataset/docs"

Page = Annotated[int, Field(ge=1, description="Page number, from 1.")]
PageSize = Annotated[int, Field(ge=1, le=tools.MAX_PAGE_SIZE,
                                description=f"Rows per page, 1 to {tools.MAX_PAGE_SIZE}.")]
CloseDay = Annotated[str | None, Field(description="A New York calendar date, YYYY-MM-DD, included.")]
Strategy = Annotated[str | None, Field(description="Only trades of this strategy (exact name).")]
StrategyTypeFilter = Annotated[str | None, Field(description=(
    "Only trades whose legs make this: single (one option), vertical, straddle, strangle, iron_condor, "
    "butterfly, calendar."))]
Basis = Annotated[Literal["net", "gross"] | None, Field(
    description="net (default): P&L after commissions and fees; gross: premiums only.")]
StrategiesPerPage = Annotated[int, Field(ge=1, le=20, description="Strategies per page, 1 to 20.")]


class Caller(Protocol):
    def user(self, ctx: Context) -> AbstractBaseUser:
        """The active user making this call; raises ToolError when there is none. Runs on the
        database thread."""
        ...


class TokenCaller:
    """One API token for the whole connection (stdio, or an in-process client). Checked again on
    every call, so a token revoked or expired while the server runs stops working at once."""

    def __init__(self, token: str):
        self._token = token

    def user(self, ctx: Context) -> AbstractBaseUser:
        try:
            return user_for_token(self._token)[0]
        except InvalidToken as error:
            raise ToolError(f"Not authenticated: {error}") from None


class RequestCaller:
    """Streamable HTTP: `http.TokenAuthMiddleware` authenticated this request's token and put its
    user in the request scope (the SDK's AuthenticatedUser, subject = user id)."""

    def user(self, ctx: Context) -> AbstractBaseUser:
        request = ctx.request_context.request
        principal = request.scope.get("user") if request is not None else None
        if not isinstance(principal, AuthenticatedUser) or not principal.access_token.subject:
            raise ToolError("Not authenticated.")
        try:
            return get_user_model().objects.get(pk=int(principal.access_token.subject), is_active=True)
        except get_user_model().DoesNotExist:
            raise ToolError("Not authenticated: user inactive or deleted.") from None


def close_stale_connection() -> None:
    """What Django does around each request: drop a connection that is broken or past
    CONN_MAX_AGE. Never one inside a transaction somebody else holds open (a test's)."""
    if not connection.in_atomic_block:
        close_old_connections()


def call_as(caller: Caller, ctx: Context, tool: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Run `tool` for the caller, in their tenant context, and keep nothing it wrote."""
    close_stale_connection()
    try:
        user = caller.user(ctx)
        with transaction.atomic():
            with tenancy.acting_as(user.pk):
                result = tool(user=user, **arguments)
            transaction.set_rollback(True)
        return result
    finally:
        close_stale_connection()


def build_server(caller: Caller) -> MCPServer:
    """A fresh MCPServer (the SDK's HTTP session manager runs once per instance) answering as `caller`."""
    server = MCPServer("tradeoptions", instructions=INSTRUCTIONS)

    async def run(ctx: Context, tool: Callable[..., Any], **arguments: Any) -> dict[str, Any]:
        return await sync_to_async(call_as, thread_sensitive=True)(caller, ctx, tool, arguments)

    @server.tool(annotations=READ_ONLY)
    async def open_positions(ctx: Context, page: Page = 1, page_size: PageSize = 50) -> dict[str, Any]:
        """Your active trades (PENDING entries, OPEN positions, CLOSING exits), newest first, each with its
        latest mark (price, bid, ask, time), unrealized P&L in dollars and %, and the distance from the mark
        to the stop-loss and take-profit."""
        return await run(ctx, tools.open_positions, page=page, page_size=page_size)

    @server.tool(annotations=READ_ONLY)
    async def search_trades(
        ctx: Context,
        history: Annotated[bool, Field(description="Closed trades only, most recently closed first (the REST "
                                                   "API's trade history; with outcome unfilled, the trades that "
                                                   "never filled, with their reason); otherwise every trade, "
                                                   "newest first.")
                           ] = False,
        status: Annotated[str | None, Field(description=f"One of {', '.join(TradeStatus.values)}.")] = None,
        outcome: Annotated[str | None, Field(description="win, loss, flat (closed, by realized P&L net of "
                                                         "commissions and fees, expiries aside), expired, or "
                                                         "unfilled (canceled or rejected: the entry never "
                                                         "filled).")] = None,
        strategy: Strategy = None,
        strategy_type: StrategyTypeFilter = None,
        ticker: Annotated[str | None, Field(description="Underlying symbol, e.g. SPY.")] = None,
        closed_from: Annotated[str | None, Field(description="Closed at or after this ISO 8601 instant "
                                                             "(e.g. 2026-12-01T00:00:00Z).")] = None,
        closed_to: Annotated[str | None, Field(description="Closed before this ISO 8601 instant.")] = None,
        page: Page = 1,
        page_size: PageSize = 50,
    ) -> dict[str, Any]:
        """Your trades, narrowed by the same filters as the REST API's trade list. Each carries what its legs
        make: strategy_type, net_direction (debit or credit; a credit trade's prices are what it received and
        what buying back costs), legs, width, max_profit, max_loss and breakevens; with history, also
        strategy_label and return_on_max_loss_pct (P&L over the most it could lose at entry)."""
        return await run(ctx, tools.search_trades, history=history, status=status, outcome=outcome, strategy=strategy,
                         strategy_type=strategy_type, ticker=ticker, closed_from=closed_from, closed_to=closed_to,
                         page=page, page_size=page_size)

    @server.tool(annotations=READ_ONLY)
    async def trade_capsule(
        ctx: Context,
        trade_id: Annotated[int, Field(ge=1, description="The trade's id.")],
        snapshot_points: Annotated[int, Field(ge=0, le=tools.MAX_SNAPSHOT_POINTS, description=(
            "Also return the price history, thinned to at most this many points (0: summary only)."))] = 0,
    ) -> dict[str, Any]:
        """Everything recorded about one of your trades: the contract, brackets, status and outcome; what was
        known at entry (scores, verdicts, greeks, signals, market regime, order book, AI reasoning); its audit
        events; a summary of its price snapshots; and its forensic targets (P&L after 15 min and 1 h, MFE/MAE,
        which exit the path touched first), once computed; and where its P&L came from (delta, gamma, theta,
        vega, residual, from its snapshots' greeks)."""
        return await run(ctx, tools.trade_capsule, trade_id=trade_id, snapshot_points=snapshot_points)

    @server.tool(annotations=READ_ONLY)
    async def performance_summary(ctx: Context, closed_from: CloseDay = None, closed_to: CloseDay = None,
                                  strategy: Strategy = None, basis: Basis = None,
                                  strategy_type: StrategyTypeFilter = None) -> dict[str, Any]:
        """Headline performance of your closed trades: count, win rate, net P&L, expectancy, profit factor,
        average hold, max drawdown, risk-adjusted ratios and the best strategy, after commissions unless
        basis is gross; `costs` gives gross P&L, commissions, fees and net P&L. Breakdowns: performance_breakdown."""
        return await run(ctx, tools.performance_summary, closed_from=closed_from, closed_to=closed_to,
                         strategy=strategy, basis=basis, strategy_type=strategy_type)

    @server.tool(annotations=READ_ONLY)
    async def performance_breakdown(
        ctx: Context,
        by: Annotated[Literal[tuple(tools.BREAKDOWNS)], Field(description=(  # type: ignore[valid-type]
            "close_reason, strategy, strategy_type, ticker, ai_verdict, gate_verdict, card_score_decile, "
            "ai_score_decile: trades, win rate and P&L per group (strategy_type adds the return on max loss: "
            "P&L / the most the trades could lose at entry, a credit spread's width x 100 - credit); day: "
            "P&L per New York day; equity_curve: the balance after "
            "each closed trade."))],
        closed_from: CloseDay = None,
        closed_to: CloseDay = None,
        strategy: Strategy = None,
        basis: Basis = None,
        page: Page = 1,
        page_size: PageSize = 50,
        strategy_type: StrategyTypeFilter = None,
    ) -> dict[str, Any]:
        """Your closed trades' performance broken down one way, a page of rows at a time."""
        return await run(ctx, tools.performance_breakdown, by=by, closed_from=closed_from, closed_to=closed_to,
                         strategy=strategy, basis=basis, page=page, page_size=page_size, strategy_type=strategy_type)

    @server.tool(annotations=READ_ONLY)
    async def calibration(ctx: Context, closed_from: CloseDay = None, closed_to: CloseDay = None,
                          strategy: Strategy = None, basis: Basis = None) -> dict[str, Any]:
        """Do the scanner's scores mean anything? Realized win rate and expectancy per decile of each score
        (card, AI, technical, sentiment) and per verdict; a score whose outcomes do not rise with it is flagged."""
        return await run(ctx, tools.calibration, closed_from=closed_from, closed_to=closed_to, strategy=strategy,
                         basis=basis)

    @server.tool(annotations=READ_ONLY)
    async def fill_quality(ctx: Context) -> dict[str, Any]:
        """Slippage of your local-paper fills against the mid of the quote each filled against (positive is a
        cost), overall and by ticker, days to expiry and quoted spread."""
        return await run(ctx, tools.fill_quality)

    @server.tool(annotations=READ_ONLY)
    async def exit_replay(ctx: Context, closed_from: CloseDay = None, closed_to: CloseDay = None,
                          strategy: Strategy = None, page: Page = 1, page_size: StrategiesPerPage = 5,
                          ) -> dict[str, Any]:
        """Hindsight: your closed trades' recorded price paths replayed with other stop-loss / take-profit
        distances; per strategy, every grid cell's P&L and win rate, the best cell and the actual P&L."""
        return await run(ctx, tools.exit_replay, closed_from=closed_from, closed_to=closed_to, strategy=strategy,
                         page=page, page_size=page_size)

    @server.resource(DATASET_COLUMNS_URI, name="dataset-columns", mime_type="application/json",
                     description="The learning data set's columns in export order, grouped input / context / target.")
    def dataset_columns() -> str:
        return json.dumps(tools.dataset_columns())

    @server.resource(DATASET_DOCS_URI, name="dataset-docs", mime_type="text/markdown",
                     description="What each column of the learning data set means (docs/dataset.md).")
    def dataset_docs() -> str:
        return tools.dataset_docs()

    return server

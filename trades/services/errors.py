"""What can go wrong in the trade lifecycle, in the trader's words.

Services raise these when they refuse before writing anything; when a refusal comes after
writes that must stand (a REJECTED trade, a conflict written to the audit log), they return it
in their result instead, so the caller's transaction keeps those writes. The API maps each
class to one HTTP status and an error `code` the UI can act on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trades.models import PaperTrade


def price_text(value: Decimal | None) -> str:
    """A price as a message shows it: two decimals ("4.30", not the stored "4.3000"), and more only
    when they carry digits (a 4.005 limit stays 4.005). The data and API fields keep the exact Decimal."""
    if value is None:
        return "none"
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:f}" if cents == value else f"{value.normalize():f}"


class TradeError(Exception):
    code = "trade_error"

    def __init__(self, message: str, *, trade: PaperTrade | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.trade = trade


class InvalidTradeInput(TradeError):
    """Field-by-field reasons the request cannot be a trade."""

    code = "invalid"

    def __init__(self, field_errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(texts)}" for name, texts in field_errors.items()))
        self.field_errors = field_errors


class RiskLimitExceeded(TradeError):
    code = "risk_limit_exceeded"

    def __init__(self, message: str, *, limit: str, current, allowed, field: str | None = None) -> None:
        super().__init__(message)
        self.limit, self.current, self.allowed = limit, current, allowed
        self.field = field  # the request's field the trader can change to fit (None: the limit's name)
        self.preview = None  # from a check without opening (trade_open_check): the trade's numbers


class IdempotencyKeyInFlight(TradeError):
    code = "idempotency_key_in_flight"


class IdempotencyKeyReused(TradeError):
    code = "idempotency_key_reused"


class VersionConflict(TradeError):
    """The client's version is stale: `trade` is the current one, to refresh from."""

    code = "version_conflict"


class InvalidTransition(TradeError):
    code = "invalid_state"


class BracketWouldFill(TradeError):
    """A new SL/TP would fire at once against the current mark."""

    code = "bracket_would_fill_immediately"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BrokerNotConfigured(TradeError):
    code = "broker_not_configured"


class LiveTradingOff(TradeError):
    code = "live_trading_disabled"


class BrokerReauthenticate(TradeError):
    """The broker token is missing, expired or refused: the trader must re-authenticate.
    `refused_by_broker` tells a token the broker turned down from one that is not set at all."""

    code = "broker_reauthenticate"

    def __init__(self, message: str, *, trade: PaperTrade | None = None, refused_by_broker: bool) -> None:
        super().__init__(message, trade=trade)
        self.refused_by_broker = refused_by_broker


class BrokerAccountForbidden(TradeError):
    """The broker knows the token but forbids the account this (its 403): not approved for it, or
    restricted. A new token does not help; the trader fixes it with the broker. Until then, or
    until the account's broker settings change, new trades are refused before reaching it."""

    code = "broker_forbidden"


class CloseForbidden(BrokerAccountForbidden):
    """A close the broker forbade (its 403): nothing was sold, the position and its bracket stand.
    Answered like a close the broker cannot take now (503), under the forbidden account's code so
    the page says why, and that asking again will not help until the account is fixed."""


class OrderRefused(TradeError):
    code = "order_rejected"


class BrokerDown(TradeError):
    """The broker could not be reached or rate-limited us; nothing was placed."""

    code = "broker_unavailable"


class BrokerOutcomeUnknown(TradeError):
    """An order may or may not have been placed; the trade waits, marked, for reconciliation."""

    code = "broker_outcome_unknown"


class BracketReplaceFailed(TradeError):
    """The new bracket could not be placed; the old one was put back."""

    code = "bracket_replace_failed"


class PositionUnprotected(TradeError):
    """Neither the new bracket nor the old one could be placed: a person must act."""

    code = "position_unprotected"


class OrderAlreadyFilled(TradeError):
    """A cancel or re-price met an order that had already filled: the fill stands and is recorded
    (the trade is OPEN after an entry, CLOSED after a close), and nothing else was sent."""

    code = "order_already_filled"


class OrdersBusy(TradeError):
    """Another request (or the monitor's resume of a close) is at the broker with this trade's
    orders right now: nothing was sent, try again in a moment."""

    code = "orders_busy"

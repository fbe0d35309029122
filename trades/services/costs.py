"""What a trade costs besides its premiums: commissions (and fees), recorded on the trade when an
order fills, so that every P&L has a gross figure (premiums only) and a net one.

The rate is the account's commission per contract (`AccountSettings.commission_rate`). The local
paper broker charges the same rate on every fill it makes (`brokers.factory.broker_for`, the
monitor's matching), so a paper trade's recorded commissions are what its fills cost. Tradier's
order answers carry no commission (only a preview's estimate does: /work/shared/reference
§2.1, §3), so a Tradier trade records the account's rate too; `commission_source` says which it
was. Regulatory fees are not reported per order by either broker: `fees` stays 0 until one does.
"""

from __future__ import annotations

from decimal import Decimal

from trades.models import AccountSettings, CloseReason, CommissionSource, PaperTrade

CENT = Decimal("0.01")
# Held contracts an expiry settles are not sold by an order: no commission (the paper broker's
# settlement fill charges none).
SETTLED_WITHOUT_COMMISSION = frozenset({CloseReason.EXPIRED, CloseReason.EXPIRED_ITM})


def trade_commission_rate(trade: PaperTrade) -> Decimal:
    """The rate the trade is charged at: its own, fixed when its entry first filled, else (before
    that) its account's commission per contract, or the server's default for an account without
    a settings row."""
    if trade.commission_per_contract is not None:
        return trade.commission_per_contract
    account = AccountSettings.objects.filter(owner_id=trade.owner_id).first() or AccountSettings()
    return account.commission_rate


def entry_costs(trade: PaperTrade, *, filled: int) -> dict:
    """The changes recording the commission on `filled` contracts of the entry, and the rate the
    exit will be charged at (fixed at the entry's fill: the position's net P&L estimate uses it)."""
    rate = trade_commission_rate(trade)
    return {"commission_per_contract": rate, "entry_commission": (rate * filled).quantize(CENT),
            "commission_source": trade.commission_source or CommissionSource.ACCOUNT_RATE}


def exit_costs(trade: PaperTrade, *, reason: str) -> dict:
    """The changes recording the exit's commission when the trade closes: every contract an order
    sold (exit legs' partial fills and the closing fill), none that an expiry settled."""
    sold = trade.exit_filled_qty + (0 if reason in SETTLED_WITHOUT_COMMISSION else trade.held_qty)
    return {"exit_commission": (trade_commission_rate(trade) * sold).quantize(CENT),
            "commission_source": trade.commission_source or CommissionSource.ACCOUNT_RATE}

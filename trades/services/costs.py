"""What a trade costs besides its premiums: commissions (and fees), recorded on the trade when an
order fills, so that every P&L has a gross figure (premiums only) and a net one.

The local paper broker charges each fill the account's commission per contract in force when it
fills (`brokers.factory.broker_for`, the monitor's matching): its ledger is the truth, so a paper
trade records what the ledger charged its orders' fills (`brokers.paper.trade_commissions`), and
its commissions and the account's cash and realized P&L agree even when the account's rate
changed while the trade was open. Tradier's order answers carry no commission (only a preview's
estimate does: /work/shared/reference §2.1, §3), so a Tradier trade records the rate fixed at its
entry fill (`AccountSettings.commission_rate` then) × contracts. Regulatory fees are not reported
per order by either broker: `fees` stays 0 until one does.
"""

from __future__ import annotations

from decimal import Decimal

from brokers.base import OrderPurpose
from brokers.models import BrokerMode
from brokers.paper import trade_commissions
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
    charged = _ledger(trade, OrderPurpose.ENTRY)
    return {"commission_per_contract": rate,
            "entry_commission": (rate * filled if charged is None else charged).quantize(CENT),
            "commission_source": trade.commission_source or CommissionSource.ACCOUNT_RATE}


def exit_costs(trade: PaperTrade, *, reason: str) -> dict:
    """The changes recording the exit's commission when the trade closes: every contract an order
    sold (parts sold earlier, exit legs' partial fills and the closing fill), none that an expiry
    settled."""
    charged = _ledger(trade, OrderPurpose.STOP_LOSS, OrderPurpose.TAKE_PROFIT, OrderPurpose.CLOSE, OrderPurpose.PART)
    if charged is None:
        sold = trade.exit_filled_qty + (0 if reason in SETTLED_WITHOUT_COMMISSION else trade.held_qty)
        charged = trade_commission_rate(trade) * sold
    return {"exit_commission": charged.quantize(CENT),
            "commission_source": trade.commission_source or CommissionSource.ACCOUNT_RATE}


def spread_exit_costs(trade: PaperTrade, *, contracts: int) -> dict:
    """The exit commission of a multi-leg trade's closing order: what the local paper ledger charged
    its legs' fills, else the trade's rate per contract per leg (`contracts`: Σ ratio × units)."""
    charged = _ledger(trade, OrderPurpose.CLOSE)
    if charged is None:
        charged = trade_commission_rate(trade) * contracts
    return {"exit_commission": charged.quantize(CENT),
            "commission_source": trade.commission_source or CommissionSource.ACCOUNT_RATE}


def _ledger(trade: PaperTrade, *purposes: OrderPurpose) -> Decimal | None:
    """What the local paper ledger charged the fills of the trade's orders of `purposes` (0 when
    none filled); None for a trade at another broker, whose commissions follow from its rate."""
    if trade.broker_mode != BrokerMode.LOCAL_PAPER:
        return None
    charged = trade_commissions(trade.owner_id, trade.pk)
    return sum((charged.get(purpose, Decimal(0)) for purpose in purposes), Decimal(0))

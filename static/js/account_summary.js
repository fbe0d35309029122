// The account summary card: starting balance, cash, premium committed, realized P&L, open risk
// and buying power, as GET /api/account/summary answers them (the local paper ledger or Tradier's
// balances). Balances read as plain dollars; P&L carries its sign; nothing wraps apart.

import { config, get } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";

const FIGURES = [
  ["starting_balance", "Starting balance", "plain"],
  ["cash", "Cash", "plain"],
  ["premium_committed", "Premium committed", "plain"],
  ["realized_pnl", "Realized P&L", "signed"],
  ["open_risk", "Open risk", "plain"],
  ["buying_power", "Buying power", "plain"],
];
const SOURCES = { LOCAL_PAPER: "local paper ledger", TRADIER_SANDBOX: "Tradier sandbox balances", TRADIER_LIVE: "Tradier balances" };

// "$10,000.00", "−$12.50": a balance has no plus sign, a negative one keeps its minus.
function dollars(value) {
  const text = fmt.money(value);
  return text.startsWith("+") ? text.slice(1) : text;
}

function figure(name, label, kind, value) {
  const text = kind === "signed" ? fmt.money(value) : dollars(value);
  const word = kind === "signed" ? fmt.direction(value) : "none";
  return el("div", { className: "summary-figure", dataset: { figure: name } },
    el("dt", { text: label }),
    el("dd", { className: `summary-value pnl-${word}`, text }));
}

export async function loadAccountSummary() {
  const card = document.getElementById("account-summary");
  if (!card) return;
  const body = card.querySelector(".summary-body");
  try {
    const summary = await get(config.urls.account_summary);
    body.replaceChildren(el("dl", { className: "summary-figures" },
      FIGURES.map(([name, label, kind]) => figure(name, label, kind, summary[name]))));
    card.querySelector(".summary-source").textContent = `from the ${SOURCES[summary.broker_mode] || "broker"}`;
  } catch (error) {
    body.replaceChildren(el("p", { className: "error", text: `Balances unavailable: ${error.message}` }));
  }
}

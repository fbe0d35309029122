// The KPI cards at the top of the Performance tab: P&L (net of commissions and fees, or gross:
// the basis picked), win rate (with its 95 % range), profit factor, expectancy in $ and R, max
// drawdown, trades, average hold, Sharpe/Sortino (or how many trading days they still need), the
// costs (gross, commissions, fees, net, whatever the basis), and the greeks attribution when the
// API has it. Every figure but the costs is on the basis the API answered on. Each
// card explains its figure in one line: on hover (title) and on tap or keyboard (a details box).

import { el } from "./dom.js";
import * as fmt from "./format.js";

export const EXPLAIN = {
  net_pnl: "Realized P&L of the trades closed in this period: what the account gained or lost (Net: after commissions and fees; Gross: premiums only).",
  win_rate: "Share of closed trades that made money; the range is where the true rate lies with 95 % confidence for this many trades (Wilson).",
  profit_factor: "Dollars won divided by dollars lost: above 1.00 the winners paid for the losers.",
  expectancy: "Average result per trade, in dollars and in R (multiples of the risk planned from entry to stop).",
  max_drawdown: "Largest fall of the account from a running high to a later low, in dollars and % of that high.",
  trades: "Trades closed in this period, as wins, losses and breakeven.",
  avg_hold: "Average time from the entry fill to the close.",
  risk_adjusted: "Sharpe: mean daily P&L over its standard deviation, × √252; Sortino counts only the losing days' spread. Shown from 20 trading days.",
  greeks: "Where the P&L came from: the part explained by delta, gamma, theta and vega, and what they leave over.",
  costs: "What the trades cost besides their premiums: gross P&L (premiums only) less commissions and fees is the net P&L.",
};

const BASIS_TITLE = { net: "Net P&L", gross: "Gross P&L" };

function explainer(key, title) {
  return el("details", { className: "explain" },
    el("summary", { "aria-label": `What is ${title}?`, title: EXPLAIN[key] }, "?"),
    el("p", { className: "explain-text", text: EXPLAIN[key] }));
}

function card(key, title, value, { tone, sub, note, words } = {}) {
  return el("article", { className: "kpi", dataset: { kpi: key } },
    el("div", { className: "kpi-head" }, el("h3", { className: "kpi-title", title: EXPLAIN[key], text: title }), explainer(key, title)),
    el("p", { className: `kpi-value${tone ? ` pnl-${tone}` : ""}${words ? " kpi-words" : ""}`, text: value }),
    sub ? el("p", { className: "kpi-sub" }, sub) : null,
    note ? el("p", { className: "kpi-note", text: note }) : null);
}

const nowrap = (text) => el("span", { className: "pnl", text });

function profitFactor(summary) {
  if (summary.profit_factor !== null) return fmt.ratio(summary.profit_factor);
  return summary.trades && Number(summary.gross_loss) === 0 ? "no losses" : "—";
}

function winRange(summary) {
  const ci = summary.win_rate_ci;
  return ci ? ["95 % range ", nowrap(fmt.rate(ci[0])), " to ", nowrap(fmt.rate(ci[1]))] : "no closed trades";
}

function riskAdjusted(ratios) {
  if (ratios.needs_days) {
    return card("risk_adjusted", "Sharpe / Sortino", `needs ${ratios.needs_days} more trading day${ratios.needs_days === 1 ? "" : "s"}`,
      { sub: `${ratios.days} of 20 trading days so far`, words: true });
  }
  return card("risk_adjusted", "Sharpe / Sortino", `${fmt.ratio(ratios.sharpe)} / ${fmt.ratio(ratios.sortino)}`,
    { sub: `annualised over ${ratios.days} trading days` });
}

// A card whose figure is a list of dollar amounts, each on its own line: [label, dollars] pairs.
function listCard(key, title, lines, { className, ...options } = {}) {
  const box = card(key, title, "", options);
  box.querySelector(".kpi-value").replaceWith(el("dl", { className: `kpi-list ${className || ""}`.trim() },
    lines.map(([label, value]) => [el("dt", { text: label }), el("dd", { className: `pnl-${fmt.direction(value)}`, text: fmt.money(value) })])));
  return box;
}

// The greeks attribution, when the API carries it (`greeks_attribution.total`: dollars per part,
// and a sentence): each part as a line, the sentence under them.
function greeks(attribution) {
  const total = attribution.total || {};
  const parts = Object.entries(total).filter(([name, value]) => name !== "pnl" && typeof value === "string" && value !== "" && !Number.isNaN(Number(value)));
  if (!parts.length) return null;
  return listCard("greeks", "P&L by greek", parts.map(([name, value]) => [name.replaceAll("_", " "), value]), {
    className: "kpi-greeks",
    sub: attribution.trades_without_attribution ? `${total.trades} of ${attribution.trades} trades attributed` : null,
    note: attribution.sentence || null,
  });
}

// Gross to net, whatever the basis: what commissions and fees took (told as the amounts taken).
function costs(totals) {
  return listCard("costs", "Costs", [["Gross P&L", totals.gross_pnl], ["Commissions", `-${totals.commission_total}`],
    ["Fees", `-${totals.fees_total}`], ["Net P&L", totals.net_pnl]]);
}

export function renderCards(performance) {
  const summary = performance.summary;
  const drawdown = performance.max_drawdown;
  const cards = [
    card("net_pnl", BASIS_TITLE[performance.basis] || BASIS_TITLE.net, fmt.money(summary.net_pnl), { tone: fmt.direction(summary.net_pnl),
      sub: summary.trades ? ["won ", nowrap(fmt.money(summary.gross_profit)), ", lost ", nowrap(fmt.money(summary.gross_loss))] : "no closed trades" }),
    card("win_rate", "Win rate", fmt.rate(summary.win_rate), { sub: winRange(summary) }),
    card("profit_factor", "Profit factor", profitFactor(summary), { sub: summary.trades ? `payoff ${fmt.ratio(summary.payoff_ratio)} (average win ÷ average loss)` : null }),
    card("expectancy", "Expectancy", `${fmt.money(summary.expectancy)} · ${fmt.rMultiple(summary.expectancy_r)}`,
      { tone: fmt.direction(summary.expectancy), sub: "per trade", note: summary.expectancy_note }),
    card("max_drawdown", "Max drawdown", fmt.money(drawdown.amount), { tone: Number(drawdown.amount) < 0 ? "loss" : "flat",
      sub: drawdown.pct !== null && Number(drawdown.amount) !== 0 ? `${fmt.percent(drawdown.pct)} from the high${drawdown.recovered_at ? ", recovered" : ", not recovered yet"}` : null }),
    card("trades", "Trades", String(summary.trades), { sub: `${summary.wins} won · ${summary.losses} lost · ${summary.breakeven} even` }),
    card("avg_hold", "Average hold", fmt.hours(summary.avg_hold_hours)),
    riskAdjusted(performance.risk_adjusted),
    performance.costs ? costs(performance.costs) : null,
    performance.greeks_attribution ? greeks(performance.greeks_attribution) : null,
  ];
  return el("div", { className: "kpi-grid", "aria-label": "Key figures" }, cards);
}

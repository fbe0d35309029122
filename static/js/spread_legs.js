// A multi-leg trade as the pages show it (docs/spreads.md): on its position row, its strategy, its legs
// in one compact line ("−1 SPY 500P · +1 SPY 495P") and what it was opened for ("credit 1.50"); in its
// detail, a table of the legs with each one's entry and latest bid, ask and mark. Every price on the row
// is a held price (a credit trade's mark is what buying it back costs); the API decides, this file
// only lays it out. A single option has one leg and shows none of this.

import { el } from "./dom.js";
import * as fmt from "./format.js";

const MINUS = "\u2212";
const STRATEGIES = {
  vertical: "Vertical", straddle: "Straddle", strangle: "Strangle", iron_condor: "Iron condor",
  butterfly: "Butterfly", calendar: "Calendar",
};

export const isSpread = (trade) => Boolean(trade.strategy_type) && trade.strategy_type !== "single";

export function strategyLabel(trade) {
  return STRATEGIES[trade.strategy_type] || fmt.words(trade.strategy_type);
}

// "SPY Iron condor Dec 18, 2026": the row's name for a spread (its legs follow under it).
export function spreadLabel(trade) {
  return `${trade.ticker} ${strategyLabel(trade)} ${fmt.day(trade.expiry).replaceAll(" ", "\u00a0")}`;
}

function strike(value) {
  return String(Number(value));
}

// "SPY 500P", with the expiry ("Jan 15") when the legs do not all expire together (a calendar).
function legName(trade, leg, expiries) {
  const when = expiries > 1 ? ` ${fmt.day(leg.expiry).replace(/, \d{4}$/, "")}` : "";
  return `${trade.ticker} ${strike(leg.strike)}${leg.right === "PUT" ? "P" : "C"}${when}`;
}

function legCount(leg) {
  return `${leg.side === "SHORT" ? MINUS : "+"}${leg.ratio}`;
}

// "−1 SPY 500P · +1 SPY 495P · …": each leg's contracts per unit, sold (−) or bought (+).
export function legsLine(trade) {
  const expiries = new Set(trade.legs.map((leg) => leg.expiry)).size;
  return trade.legs.map((leg) => `${legCount(leg)}\u00a0${legName(trade, leg, expiries).replaceAll(" ", "\u00a0")}`).join("\u00a0· ");
}

// "credit 1.50" or "debit 2.20": the held entry, per share of one unit.
export function openedFor(trade) {
  const price = trade.entry_price ?? trade.planned_entry_price;
  return `${trade.net_direction === "credit" ? "credit" : "debit"} ${fmt.price(price)}`;
}

// Under the row's name: the legs, then what it was opened for and how many units.
export function spreadSummary(trade) {
  const units = trade.qty === 1 ? "1 unit" : `${trade.qty} units`;
  return el("span", { className: "spread-summary" },
    el("small", { className: "spread-legs block", text: legsLine(trade) }),
    el("small", { className: "muted block", text: `${openedFor(trade)} · ${units}` }));
}

// The mark could not be made this cycle (a leg had no quote): the last net every leg made is shown.
export function staleTag(trade) {
  if (!trade.mark_stale) return null;
  return el("small", { className: "mark-stale", title: "A leg had no quote in the last cycle: this is the last net of every leg's quote",
    text: "stale" });
}

// The detail's table of legs: side, ratio, contract, entry and the latest bid / ask / mark of each.
export function legsTable(trade) {
  const cell = (label, text, className = "num") => el("td", { className, dataset: { label }, text });
  return el("section", { className: "spread-legs-table", "aria-label": "Legs" },
    el("h3", { text: `${strategyLabel(trade)}: ${trade.legs.length} legs, ${openedFor(trade)}` }),
    el("table", { className: "legs-table responsive" },
      el("thead", {}, el("tr", {}, ["Side", "Ratio", "Contract", "Entry", "Bid", "Ask", "Mark"].map(
        (name, index) => el("th", { scope: "col", className: index === 0 || index === 2 ? "" : "num", text: name })))),
      el("tbody", {}, trade.legs.map((leg) => el("tr", { dataset: { symbol: leg.symbol } },
        el("th", { scope: "row", dataset: { label: "Side" }, text: leg.side === "SHORT" ? "Short" : "Long" }),
        cell("Ratio", String(leg.ratio)),
        cell("Contract", fmt.occLabel(leg.symbol), "contract"),
        cell("Entry", fmt.price(leg.entry_price)),
        cell("Bid", fmt.price(leg.bid)),
        cell("Ask", fmt.price(leg.ask)),
        cell("Mark", fmt.price(leg.mark)))))));
}

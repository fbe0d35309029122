// A finished trade's legs as the History shows them (issue 19): the strategy in words, whether it
// opened for a debit or a credit and at what net price, its width and max loss, the legs compact
// ("+490P −495P −515C +520C"), and in the Explain row a table of each leg's fills and how it left.
// Every figure comes from the API (trades/strategies.py); these functions only lay it out.

import { el } from "./dom.js";
import * as fmt from "./format.js";

const MINUS = "\u2212";
const LEG_EXITS = { CLOSED: "closed", EXPIRED: "expired worthless", EXERCISED: "exercised", ASSIGNED: "assigned", CASH_SETTLED: "settled in cash" };

export const isSpread = (trade) => Boolean(trade.strategy_type) && trade.strategy_type !== "single";

function strike(value) {
  return String(Number(value));
}

// "+490P −2×495P": each leg bought (+) or sold (−), its contracts per unit when more than one.
export function legsCompact(legs) {
  return (legs || []).map((leg) => {
    const sign = leg.side === "SHORT" ? MINUS : "+";
    const ratio = leg.ratio > 1 ? `${leg.ratio}\u00d7` : "";
    return `${sign}${ratio}${strike(leg.strike)}${leg.right === "PUT" ? "P" : "C"}`;
  }).join(" ");
}

// "credit 1.60": the held net price at entry and which way it went.
export function netPrice(trade, value) {
  return `${fmt.price(value)}\u00a0${trade.net_direction === "credit" ? "cr" : "db"}`;
}

// The Contract cell of a multi-leg row: "SPY Iron condor 490/495/515/520", then its legs, expiry,
// credit or debit, width and max loss on a second line.
export function contractCell(trade) {
  const facts = [legsCompact(trade.legs), fmt.day(trade.expiry), `${trade.net_direction} ${fmt.price(trade.entry_price)}`];
  if (Number(trade.width) > 0) facts.push(`width ${strike(trade.width)}`);
  facts.push(trade.max_loss === null ? "max loss unlimited" : `max loss ${fmt.money(trade.max_loss).replace(/^\+/, "")}`);
  return [el("span", { className: "strategy-label", text: `${trade.ticker} ${trade.strategy_label}` }),
    el("small", { className: "muted block legs-compact", text: facts.join(" · ") })];
}

// A spread's net close price is below zero when closing it moved money the other way: a calendar
// whose front leg settled, its back then sold for less than the settlement cost, or a credit
// spread bought back for a credit. Said in words, never as a minus sign in a sentence.
function negativeClose(trade) {
  return isSpread(trade) && Number(trade.close_price) < 0;
}

// How the spread left, after "Opened for a debit of 3.20, ": "sold for 2.10", "closed at a net
// cost of 5.00"; a credit spread "bought back for 0.40" or "bought back for a credit of 0.30".
export function closeWords(trade) {
  const credit = trade.net_direction === "credit";
  if (!negativeClose(trade)) return `${credit ? "bought back" : "sold"} for ${fmt.price(trade.close_price)}`;
  const paid = fmt.price(-Number(trade.close_price));
  return credit ? `bought back for a credit of ${paid}` : `closed at a net cost of ${paid}`;
}

// "at 2.10" after "Closed SPY 490/495 ": a spread's negative close as "at a net cost of 5.00"
// (a debit spread) or "for a net credit of 0.30" (a credit spread bought back for a credit).
export function closedAt(trade) {
  if (!negativeClose(trade)) return `at ${fmt.price(trade.close_price)}`;
  const paid = fmt.price(-Number(trade.close_price));
  return trade.net_direction === "credit" ? `for a net credit of ${paid}` : `at a net cost of ${paid}`;
}

// The Explain row's table of legs: side, contracts, contract, entry and exit fills, how it left.
export function legsBlock(trade) {
  if (!isSpread(trade)) return null;
  const rows = trade.legs.map((leg) => el("tr", {},
    el("th", { scope: "row", text: leg.side === "SHORT" ? "Sold" : "Bought" }),
    el("td", { className: "num", text: String(leg.ratio * trade.qty) }),
    el("td", { text: fmt.occLabel(leg.symbol) }),
    el("td", { className: "num", text: fmt.price(leg.entry_price) }),
    el("td", { className: "num", text: fmt.price(leg.exit_price) }),
    el("td", { text: LEG_EXITS[leg.exit_reason] || "—" })));
  const direction = `Opened for a ${trade.net_direction === "credit" ? "credit" : "debit"} of ${fmt.price(trade.entry_price)}, ${closeWords(trade)}`;
  return el("section", { className: "trade-legs", "aria-label": "The legs" },
    el("p", { text: `${trade.strategy_label}: ${direction} per share of one unit.` }),
    el("table", { className: "metrics-table legs-table" },
      el("thead", {}, el("tr", {}, ["Leg", "Contracts", "Contract", "Entry", "Exit", "Left by"].map((title, index) =>
        el("th", { scope: "col", className: index === 1 || index === 3 || index === 4 ? "num" : "", text: title })))),
      el("tbody", {}, rows)));
}

// One trade, explained: where its P&L came from (greeks attribution), what its path did after the
// entry (forensic targets) and what the market looked like at entry. Everything arrives worded and
// labelled in the trade detail's `explanation` (GET /api/trades/{id}); this only lays it out.

import { el } from "./dom.js";
import * as fmt from "./format.js";

const PARTS = [
  ["delta", "Delta (the stock's move)"],
  ["gamma", "Gamma (its curvature)"],
  ["theta", "Theta (time decay)"],
  ["vega", "Vega (implied volatility)"],
  ["residual", "Residual (what the greeks miss)"],
  ["unattributed", "Steps without greeks"],
  ["execution", "Fills against the marks"],
];

function pairs(rows) {
  return el("dl", {}, rows.map(([name, value]) => [el("dt", { text: name }), el("dd", { text: value })]));
}

function group(title, ...content) {
  return el("div", { className: "fact-group" }, el("h3", { text: title }), ...content);
}

function muted(text) {
  return el("p", { className: "muted", text });
}

function minutes(value) {
  return value === null || value === undefined ? "—" : fmt.duration(Number(value) * 60000);
}

function attribution(split) {
  if (!split.available) return group("Where the P&L came from", muted(split.note));
  const rows = PARTS.filter(([name]) => name !== "unattributed" || Number(split[name]) !== 0)
    .map(([name, label]) => [label, fmt.money(split[name])]);
  return group("Where the P&L came from",
    pairs([...rows, ["Total P&L", fmt.money(split.pnl)]]),
    split.note ? muted(split.note) : null,
    el("p", { className: "muted small", title: split.method, text: `From ${split.snapshots} snapshots; theta in ${split.theta_days} days.` }));
}

function forensics(found) {
  if (!found.available) return group("After the entry", muted(found.note));
  return group("After the entry", pairs([
    ["Best move (MFE)", fmt.percent(found.mfe_pct)],
    ["Reached after", minutes(found.minutes_to_mfe)],
    ["Worst move (MAE)", fmt.percent(found.mae_pct)],
    ["Reached after", minutes(found.minutes_to_mae)],
    ["Exit touched first", found.first_touch_label],
    ["Touched after", found.first_touch === "NEITHER" ? "—" : minutes(found.minutes_to_first_touch)],
    ["P&L after 15 min", fmt.money(found.pnl_15m)],
    ["P&L after 1 hour", fmt.money(found.pnl_1h)],
  ]));
}

function context(entry) {
  const timeframes = entry.signals.map((frame) => el("div", { className: "timeframe" },
    el("h4", { text: frame.label }), pairs(frame.rows.map((row) => [row.label, row.text]))));
  return group("At entry",
    timeframes.length ? el("div", { className: "timeframes" }, timeframes) : muted("No signals recorded."),
    el("h4", { text: "Market" }),
    entry.regime.length ? pairs(entry.regime.map((row) => [row.label, row.text])) : muted("No market regime recorded."),
    entry.missing.length
      ? el("details", { className: "missing" }, el("summary", { text: `Not available (${entry.missing.length})` }),
        el("ul", {}, entry.missing.map((item) => el("li", { text: `${item.label}: ${item.reason}` }))))
      : null);
}

// The detail's explanation as fact groups; nothing when the server sent none.
export function explanationGroups(explanation) {
  if (!explanation) return [];
  return [attribution(explanation.attribution), forensics(explanation.forensics), context(explanation.entry_context)];
}

// Breakdown tables of the Performance tab (by strategy, ticker, entry hour, days to expiry, close
// reason, verdicts): units and signs on every figure, a bar of net P&L in each row, sortable by
// any column (header buttons; a "sort by" menu on a phone, where each row is a stacked card).

import { el } from "./dom.js";
import * as fmt from "./format.js";
import { EXPLAIN } from "./performance_cards.js";

const DTE_WORDS = { 0: "0 days (expiry day)", "1-7": "1–7 days", "8-30": "8–30 days", "31-60": "31–60 days", ">60": "over 60 days" };

const STRATEGY_TYPES = { single: "Single options", vertical: "Vertical spreads", straddle: "Straddles", strangle: "Strangles", iron_condor: "Iron condors", butterfly: "Butterflies", calendar: "Calendars" };
const RETURN_ON_MAX_LOSS = "Net P&L divided by the most the trades could lose at entry: a single option's premium, a debit spread's debit, a credit spread's width × 100 less the credit. Trades with an unlimited max loss are left out.";

export const BREAKDOWNS = [
  ["by_strategy", "strategy", "Strategy", (value) => value || "(no strategy)"],
  ["by_strategy_type", "strategy_type", "Legs", (value) => STRATEGY_TYPES[value] || value],
  ["by_ticker", "ticker", "Ticker", (value) => value || "—"],
  ["by_entry_hour", "entry_hour", "Entry hour (New York)", (value) => (value ? `${value}–${String(Number(value.slice(0, 2)) + 1).padStart(2, "0")}:00 ET` : "(unknown)")],
  ["by_dte", "dte_bucket", "Days to expiry at entry", (value) => DTE_WORDS[value] || "(unknown)"],
  ["by_close_reason", "close_reason", "Close reason", (value) => fmt.CLOSE_REASONS[value] || value || "—"],
  ["by_ai_verdict", "ai_verdict", "AI verdict", (value) => value || "(none)"],
  ["by_gate_verdict", "gate_verdict", "Gate verdict", (value) => value || "(none)"],
];

// What the trader chose survives the page's refresh (every 15 s): the breakdown shown, each table's sort.
const chosen = { breakdown: null, sorts: new Map() };

const num = (value) => (value === null || value === undefined ? -Infinity : Number(value));

function winRate(row) {
  const ci = row.win_rate_ci;
  return el("span", {}, fmt.rate(row.win_rate), ci ? el("small", { className: "muted ci", text: ` (${fmt.rate(ci[0], 0)}–${fmt.rate(ci[1], 0)})` }) : null);
}

function pnlBar(value, scale) {
  const bar = el("span", { className: `bar bar-${fmt.direction(value)}`, "aria-hidden": "true" });
  bar.style.width = `${scale ? Math.round((Math.abs(Number(value)) / scale) * 100) : 0}%`; // CSSOM: allowed by the CSP
  return el("span", { className: "pnl-cell" }, el("span", { className: `pnl-${fmt.direction(value)}`, text: fmt.money(value) }), el("span", { className: "bar-track" }, bar));
}

function columns(keyTitle, label, scale, extra) {
  return [
    { id: "label", title: keyTitle, sort: (row) => label(row.key), cell: (row) => label(row.key), text: true },
    { id: "trades", title: "Trades", sort: (row) => row.trades, cell: (row) => String(row.trades) },
    { id: "win_rate", title: "Win rate (95 % range)", explain: EXPLAIN.win_rate, sort: (row) => num(row.win_rate), cell: winRate },
    { id: "net_pnl", title: "Net P&L", explain: EXPLAIN.net_pnl, sort: (row) => num(row.net_pnl), cell: (row) => pnlBar(row.net_pnl, scale) },
    { id: "expectancy", title: "Per trade", explain: EXPLAIN.expectancy, sort: (row) => num(row.expectancy), cell: (row) => `${fmt.money(row.expectancy)} · ${fmt.rMultiple(row.expectancy_r)}` },
    { id: "profit_factor", title: "Profit factor", explain: EXPLAIN.profit_factor, sort: (row) => num(row.profit_factor), cell: (row) => (row.profit_factor === null && row.trades && Number(row.gross_loss) === 0 ? "no losses" : fmt.ratio(row.profit_factor)) },
    ...extra,
  ];
}

// One sortable table; `rows` carry a `key` (the group's value) beside the API's figures.
function sortableTable(name, cols, rows) {
  const state = chosen.sorts.get(name) || { by: "net_pnl", descending: true };
  chosen.sorts.set(name, state);
  const tbody = el("tbody");
  const heads = cols.map((col) => el("th", { scope: "col", className: col.text ? "" : "num", title: col.explain, dataset: { column: col.id } },
    el("button", { type: "button", className: "sort", onclick: () => sortBy(col.id) }, col.title)));
  const menu = el("select", { className: "sort-menu", "aria-label": "Sort rows by", onchange: (event) => sortBy(event.target.value, true) },
    cols.map((col) => el("option", { value: col.id, text: `Sort by ${col.title.toLowerCase()}` })));
  function draw() {
    const col = cols.find((c) => c.id === state.by);
    const sorted = [...rows].sort((a, b) => {
      const x = col.sort(a);
      const y = col.sort(b);
      const order = typeof x === "string" ? x.localeCompare(y) : x - y;
      return state.descending ? -order : order;
    });
    tbody.replaceChildren(...sorted.map((row) => el("tr", { dataset: { key: row.key } }, cols.map((c, index) => {
      const content = c.cell(row);
      return index === 0
        ? el("th", { scope: "row", text: content })
        : el("td", { className: "num", dataset: { label: c.title, column: c.id } }, content);
    }))));
    heads.forEach((th) => (th.dataset.column === state.by ? th.setAttribute("aria-sort", state.descending ? "descending" : "ascending") : th.removeAttribute("aria-sort")));
    menu.value = state.by;
  }
  function sortBy(id, fromMenu = false) {
    state.descending = fromMenu || state.by !== id ? id !== "label" : !state.descending;
    state.by = id;
    draw();
  }
  draw();
  return el("div", { className: "breakdown", dataset: { breakdown: name } }, menu,
    el("table", { className: "metrics-table breakdown-table responsive" }, el("thead", {}, el("tr", {}, heads)), tbody));
}

export function renderBreakdowns(performance) {
  const present = BREAKDOWNS.filter(([name]) => (performance[name] || []).length);
  if (!present.length) return el("p", { className: "muted", text: "No closed trades in this period." });
  const panes = new Map();
  const picker = el("div", { className: "breakdown-picker", role: "group", "aria-label": "Break the results down by" });
  for (const [name, field, title, label] of present) {
    const rows = performance[name].map((row) => ({ ...row, key: row[field] }));
    const scale = Math.max(...rows.map((row) => Math.abs(Number(row.net_pnl))));
    const extra = name === "by_close_reason" ? [{ id: "avg_hold_hours", title: "Average hold", sort: (row) => num(row.avg_hold_hours), cell: (row) => fmt.hours(row.avg_hold_hours) }]
      : name === "by_strategy_type" ? [{ id: "return_on_max_loss", title: "Return on max loss", explain: RETURN_ON_MAX_LOSS, sort: (row) => num(row.return_on_max_loss), cell: (row) => (row.return_on_max_loss === null ? "—" : `${fmt.rate(row.return_on_max_loss)} of ${fmt.money(row.max_loss_total).replace(/^\+/, "")}`) }]
        : [];
    panes.set(name, sortableTable(name, columns(title, label, scale, extra), rows));
    picker.append(el("button", { type: "button", className: "pill", "aria-pressed": "false", dataset: { breakdown: name }, text: title.replace(/ \(.*\)$/, ""), onclick: () => show(name) }));
  }
  const holder = el("div", { className: "breakdown-holder" });
  function show(name) {
    chosen.breakdown = name;
    holder.replaceChildren(panes.get(name));
    for (const button of picker.children) button.setAttribute("aria-pressed", String(button.dataset.breakdown === name));
  }
  show(present.some(([name]) => name === chosen.breakdown) ? chosen.breakdown : present[0][0]);
  return el("div", {}, picker, holder);
}

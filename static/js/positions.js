// The open positions table: PENDING, OPEN and CLOSING trades, one row each (mark, P&L, exits and
// their distance, the row's actions), with the expanded detail row under it. A refresh rebuilds the
// rows without moving the trader's focus.

import { focusAdjust } from "./adjust.js";
import { config, get } from "./api.js";
import { announceCloses } from "./close_news.js";
import { openCloseDialog } from "./close_dialog.js";
import { el } from "./dom.js";
import { heldCell } from "./exit_parts.js";
import { policyChips, trailNote } from "./exit_policy_chips.js";
import * as fmt from "./format.js";
import { markCell, markIsLive } from "./marks.js";
import { UNREALIZED_NET_NOTE, netPnl } from "./pnl.js";
import { detailRow, dropDetail, loadDetail } from "./position_detail.js";
import { state } from "./portfolio_state.js";
import { isSpread, spreadLabel, spreadSummary, staleTag } from "./spread_legs.js";
import { setLatestMark } from "./topbar.js";
import * as orders from "./working_orders.js";

const ACTIVE = ["PENDING", "OPEN", "CLOSING"];

// The exit's level, its distance from the mark and a note under both (the trailing stop's best
// bid), stacked in one box so a phone's row keeps them together at its right edge.
function exitCell(price, distance, distancePct, note = null) {
  const cell = el("span", { className: "exit" }, el("span", { text: fmt.price(price) }));
  if (distance !== null && distance !== undefined) {
    const past = Number(distance) < 0;
    const text = `${Math.abs(Number(distance)).toFixed(2)} ${past ? "past" : "away"} (${Math.abs(Number(distancePct)).toFixed(2)}%)`;
    cell.append(el("small", { className: past ? "distance past" : "distance", text }));
  }
  if (note) cell.append(note);
  return cell;
}

// "17d"; a contract past its expiry that is still on the books (the expiry run has not settled it
// yet) reads "expired", not a count of days gone by.
function daysLeft(days) {
  return days < 0 ? "expired" : `${days}d`;
}

async function fetchActive() {
  const pages = await Promise.all(ACTIVE.map((status) => get(`${config.urls.trades}?status=${status}`)));
  return pages.flatMap((page) => page.results).sort((a, b) => b.created_at.localeCompare(a.created_at));
}

function positionRow(trade) {
  const spread = isSpread(trade);
  const label = spread ? spreadLabel(trade) : fmt.contractLabel(trade);
  const expanded = state.expanded.has(trade.id);
  const status = orders.orderBadges(trade);
  // No SL/TP order guards this position at the broker: said loudest, until the monitor attaches one.
  const unprotected = trade.unprotected ? el("span", { className: "status-tag status-unprotected", title: trade.attention_reason || "No stop-loss or take-profit order at the broker", text: "UNPROTECTED" }) : null;
  const attention = trade.oversold_qty > 0
    ? el("span", { className: "status-tag status-oversold", title: trade.attention_reason, text: `short ${trade.oversold_qty} at the broker` })
    : trade.needs_attention && !trade.unprotected ? el("span", { className: "status-tag status-attention", title: trade.attention_reason, text: "needs attention" }) : null;
  return el("tr", { className: "position", dataset: { tradeId: trade.id, version: trade.version } },
    el("th", { scope: "row", className: "contract", dataset: { label: "Contract" } },
      el("span", { className: "contract-label", text: label }), status, unprotected, attention,
      spread ? spreadSummary(trade) : null,
      trade.strategy ? el("small", { className: "muted block", text: trade.strategy }) : null, policyChips(trade)),
    el("td", { className: "num", dataset: { label: "Qty" } }, heldCell(trade)),
    el("td", { className: "num", dataset: { label: "Entry" }, text: fmt.price(trade.entry_price ?? trade.planned_entry_price) }),
    el("td", { className: `num${markIsLive(trade) ? "" : " mark-closed"}`, dataset: { label: "Mark" } }, markCell(trade), staleTag(trade)),
    el("td", { className: "num", title: UNREALIZED_NET_NOTE, dataset: { label: "Unrealized P&L, net" } },
      netPnl(trade.unrealized_pnl_net, trade.unrealized_pnl, trade.unrealized_pnl_pct)),
    el("td", { className: "num sl", dataset: { label: "Stop-loss" } },
      exitCell(trade.sl_price, trade.sl_distance, trade.sl_distance_pct, trailNote(trade))),
    el("td", { className: "num tp", dataset: { label: "Take-profit" } }, exitCell(trade.tp_price, trade.tp_distance, trade.tp_distance_pct)),
    el("td", { dataset: { label: "Held" }, text: trade.entry_date ? fmt.since(trade.entry_date) : "not filled" }),
    el("td", { className: "num", dataset: { label: "DTE" }, text: daysLeft(trade.days_to_expiry) }),
    el("td", { className: "row-actions" },
      el("button", { type: "button", className: "secondary toggle", "aria-expanded": String(expanded), "aria-controls": `detail-${trade.id}`,
        "aria-label": `Details of ${label}`, onclick: () => toggleDetail(trade.id) }, expanded ? "Hide" : "Details"),
      orders.orderActions(trade) || [
        el("button", { type: "button", className: "secondary adjust", "aria-label": `Adjust stop-loss or take-profit of ${label}`,
          disabled: trade.status !== "OPEN", onclick: () => openAdjust(trade.id) }, "Adjust"),
        el("button", { type: "button", className: "danger close", "aria-label": `Close ${label}`,
          disabled: trade.status !== "OPEN", onclick: () => openCloseDialog(trade.id) }, "Close")]));
}

// A refresh rebuilds the rows; whoever was on a button or typing in an adjust field stays there.
const FOCUSABLE = ["toggle", "adjust", "close", "mark", "reprice", "cancel-order"];

function focusSelector(node) {
  const row = node?.closest?.("tr.position");
  const kind = row && FOCUSABLE.find((name) => node.classList.contains(name));
  return kind ? `tr.position[data-trade-id="${row.dataset.tradeId}"] .${kind}` : null;
}

function renderPositions(active) {
  const focused = document.activeElement;
  const selector = focusSelector(focused);
  state.trades = new Map(active.map((trade) => [trade.id, trade]));
  const body = document.querySelector("#positions tbody");
  const rows = [];
  for (const trade of active) {
    rows.push(positionRow(trade));
    if (state.expanded.has(trade.id)) rows.push(detailRow(trade.id));
  }
  for (const id of [...state.expanded]) {
    if (!state.trades.has(id)) dropDetail(id);
  }
  body.replaceChildren(...rows);
  if (focused?.isConnected && focused !== document.activeElement) focused.focus({ preventScroll: true });
  else if (selector) document.querySelector(selector)?.focus({ preventScroll: true });
  document.getElementById("positions-empty").hidden = active.length > 0;
  const marks = active.map((trade) => trade.last_updated).filter(Boolean).sort();
  setLatestMark(marks.length ? marks[marks.length - 1] : null);
}

export async function loadPositions() {
  const active = await fetchActive();
  await announceCloses(active);
  renderPositions(active);
  await Promise.all([...state.expanded].filter((id) => state.trades.has(id)).map((id) => loadDetail(id)));
}

// --- the expanded row ----------------------------------------------------------------------------

async function toggleDetail(id) {
  if (state.expanded.has(id)) {
    dropDetail(id);
    renderPositions([...state.trades.values()]);
    document.querySelector(`tr.position[data-trade-id="${id}"] .toggle`)?.focus();
    return;
  }
  state.expanded.add(id);
  renderPositions([...state.trades.values()]);
  document.querySelector(`tr.position[data-trade-id="${id}"] .toggle`)?.focus();
  await loadDetail(id);
}

function openAdjust(id) {
  if (!state.expanded.has(id)) toggleDetail(id).then(() => focusAdjust(id));
  else focusAdjust(id);
}


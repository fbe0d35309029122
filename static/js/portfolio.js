// The portfolio page: tabs, open positions (with an expandable detail: chart, greeks, scores,
// adjust form, event log), trade history with filters, performance, the new-trade form, closing
// through a confirmation dialog, the version-conflict flow, and polling that pauses while hidden.
// Every figure shown comes from the API; this file only lays it out.

import { ApiError, config, get, newIdempotencyKey, post, put } from "./api.js";
import { renderChart } from "./chart.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";
import { notify } from "./notify.js";
import { bindOrderEntry } from "./order_entry.js";
import { renderPerformance } from "./performance.js";
import { play } from "./sound.js";
import { toast } from "./toast.js";
import { setLatestMark, startTopbar } from "./topbar.js";
import { loadAccountSummary } from "./account_summary.js";
import * as orders from "./working_orders.js";

const ACTIVE = ["PENDING", "OPEN", "CLOSING"];
const CONFLICT_CODES = new Set(["version_conflict", "invalid_state"]);
const REFRESH_MS = (config.refresh_seconds || 15) * 1000;

const state = {
  trades: new Map(), // id → the trade as last listed
  known: null, // ids active at the previous poll (null before the first)
  expanded: new Set(),
  details: new Map(), // id → its detail <tr>, kept across re-renders
  charts: new Map(),
  closedHere: new Set(), // closes this page made: announced once, by the close itself
  historyLoaded: false,
  timer: null,
  lastRefresh: 0,
  refreshing: null,
  performanceCharts: [],
};

function pnl(amount, pct) {
  const word = fmt.direction(amount);
  const label = { gain: "gain", loss: "loss", flat: "flat", none: "" }[word];
  return el("span", { className: `pnl pnl-${word}` },
    el("span", { className: "pnl-amount", text: fmt.money(amount) }),
    pct !== undefined && pct !== null ? el("span", { className: "pnl-pct", text: ` (${fmt.percent(pct)})` }) : null,
    label ? el("span", { className: "pnl-word", text: ` ${label}` }) : null);
}

function exitCell(price, distance, distancePct) {
  const cell = el("span", { className: "exit" }, el("span", { text: fmt.price(price) }));
  if (distance !== null && distance !== undefined) {
    const past = Number(distance) < 0;
    const text = `${Math.abs(Number(distance)).toFixed(2)} ${past ? "past" : "away"} (${Math.abs(Number(distancePct)).toFixed(2)}%)`;
    cell.append(el("small", { className: past ? "distance past" : "distance", text }));
  }
  return cell;
}

// --- tabs ----------------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll("[role=tab]")];

function selectTab(tab, { focus = false } = {}) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  const name = tab.id.replace("tab-", "");
  history.replaceState(null, "", name === "open" ? location.pathname : `#${name}`);
  if (name === "history") loadHistory();
  if (name === "performance") loadPerformance();
}

function bindTabs() {
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
      if (event.key in moves) {
        event.preventDefault();
        selectTab(tabs[(moves[event.key] + tabs.length) % tabs.length], { focus: true });
      }
    });
  });
  const initial = tabs.find((tab) => `#${tab.id.replace("tab-", "")}` === location.hash);
  if (initial) selectTab(initial);
}

const visibleTab = () => tabs.find((tab) => tab.getAttribute("aria-selected") === "true").id.replace("tab-", "");

// --- open positions ------------------------------------------------------------------------------

async function fetchActive() {
  const pages = await Promise.all(ACTIVE.map((status) => get(`${config.urls.trades}?status=${status}`)));
  return pages.flatMap((page) => page.results).sort((a, b) => b.created_at.localeCompare(a.created_at));
}

async function announceCloses(active) {
  const ids = new Set(active.map((trade) => trade.id));
  const gone = state.known ? [...state.known].filter((id) => !ids.has(id)) : [];
  state.known = ids;
  for (const id of gone) {
    if (state.closedHere.delete(id)) continue;
    let trade;
    try {
      trade = await get(`${config.urls.trades}/${id}`);
    } catch {
      continue;
    }
    const label = fmt.shortLabel(trade);
    const amount = fmt.money(trade.realized_pnl);
    const [sound, text, kind] = closeNews(trade, label, amount);
    if (sound) play(sound);
    toast(text, kind);
    // The same words, for a trader looking at another tab or window (if they opted in).
    notify(`tradeoptions: ${label}`, { body: text, tag: `trade-${trade.id}` });
  }
}

// What a trade that left the open positions means: [sound, message, toast kind].
function closeNews(trade, label, amount) {
  if (trade.close_reason === "TP_HIT") return ["profit", `${label}: take-profit hit, ${amount}`, "success"];
  if (trade.close_reason === "SL_HIT") return ["loss", `${label}: stop-loss hit, ${amount}`, "warning"];
  if (trade.close_reason === "MANUAL_CLOSE") return ["pop", `${label} was closed, ${amount}`, "info"];
  if (trade.status === "CLOSED") {
    return [Number(trade.realized_pnl) > 0 ? "profit" : "loss",
      `${label}: ${fmt.CLOSE_REASONS[trade.close_reason] || "closed"}, ${amount}`, "info"];
  }
  return [null, `${label}: ${trade.status.toLowerCase()}${trade.status_reason ? ` (${trade.status_reason})` : ""}`, "warning"];
}

function positionRow(trade) {
  const label = fmt.contractLabel(trade);
  const expanded = state.expanded.has(trade.id);
  const bidAsk = `bid ${fmt.price(trade.current_bid)} / ask ${fmt.price(trade.current_ask)}`;
  const status = orders.orderBadges(trade);
  // No SL/TP order guards this position at the broker: said loudest, until the monitor attaches one.
  const unprotected = trade.unprotected ? el("span", { className: "status-tag status-unprotected", title: trade.attention_reason || "No stop-loss or take-profit order at the broker", text: "UNPROTECTED" }) : null;
  const attention = trade.oversold_qty > 0
    ? el("span", { className: "status-tag status-oversold", title: trade.attention_reason, text: `short ${trade.oversold_qty} at the broker` })
    : trade.needs_attention && !trade.unprotected ? el("span", { className: "status-tag status-attention", title: trade.attention_reason, text: "needs attention" }) : null;
  return el("tr", { className: "position", dataset: { tradeId: trade.id, version: trade.version } },
    el("th", { scope: "row", className: "contract", dataset: { label: "Contract" } },
      el("span", { className: "contract-label", text: label }), status, unprotected, attention,
      trade.strategy ? el("small", { className: "muted block", text: trade.strategy }) : null),
    el("td", { className: "num", dataset: { label: "Qty" }, text: String(trade.filled_qty || trade.qty) }),
    el("td", { className: "num", dataset: { label: "Entry" }, text: fmt.price(trade.entry_price ?? trade.planned_entry_price) }),
    el("td", { className: `num${trade.next_session_open ? " mark-closed" : ""}`, dataset: { label: "Mark" } }, el("span", {},
      el("span", { className: "mark", title: bidAsk, tabindex: "0", "aria-label": `mark ${fmt.price(trade.current_price)}, ${bidAsk}`, text: fmt.price(trade.current_price) }),
      orders.markAge(trade))),
    el("td", { className: "num", dataset: { label: "Unrealized P&L" } }, pnl(trade.unrealized_pnl, trade.unrealized_pnl_pct)),
    el("td", { className: "num sl", dataset: { label: "Stop-loss" } }, exitCell(trade.sl_price, trade.sl_distance, trade.sl_distance_pct)),
    el("td", { className: "num tp", dataset: { label: "Take-profit" } }, exitCell(trade.tp_price, trade.tp_distance, trade.tp_distance_pct)),
    el("td", { dataset: { label: "Held" }, text: trade.entry_date ? fmt.since(trade.entry_date) : "not filled" }),
    el("td", { className: "num", dataset: { label: "DTE" }, text: `${trade.days_to_expiry}d` }),
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

async function loadPositions() {
  const active = await fetchActive();
  await announceCloses(active);
  renderPositions(active);
  await Promise.all([...state.expanded].filter((id) => state.trades.has(id)).map((id) => loadDetail(id)));
}

// --- the expanded row ----------------------------------------------------------------------------

function dropDetail(id) {
  state.expanded.delete(id);
  state.details.delete(id);
  state.charts.get(id)?.remove();
  state.charts.delete(id);
}

function detailRow(id) {
  if (state.details.has(id)) return state.details.get(id);
  const adjust = adjustForm(id);
  const row = el("tr", { className: "detail", id: `detail-${id}`, dataset: { tradeId: id } },
    el("td", { colspan: "10" },
      el("div", { className: "detail-inner" },
        el("section", { className: "detail-chart", "aria-label": "P&L chart" }, el("h3", { text: "Mark vs entry, stop-loss and take-profit" }), el("div", { className: "chart" })),
        el("div", { className: "detail-side" },
          el("section", { className: "facts" }, el("p", { className: "muted", text: "Loading…" })),
          adjust),
        el("section", { className: "events" }, el("h3", { text: "Event log" }), el("ol", { className: "event-log" })))));
  state.details.set(id, row);
  return row;
}

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

function factList(title, pairs) {
  const shown = pairs.filter(([, value]) => value !== null && value !== undefined && value !== "");
  return el("div", { className: "fact-group" }, el("h3", { text: title }),
    shown.length
      ? el("dl", {}, shown.map(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]))
      : el("p", { className: "muted", text: "None recorded." }));
}

function greek(value, digits = 3) {
  return value === null || value === undefined ? null : Number(value).toFixed(digits);
}

// --- event payloads, readable --------------------------------------------------------------------

// The words a trader knows for the keys the services write into an event's payload; any other key
// is shown with its underscores as spaces.
const PAYLOAD_LABELS = {
  option_symbol: "contract", qty: "contracts", entry: "entry type", planned_entry_price: "planned entry",
  entry_price: "entry", close_price: "close", sl_price: "stop-loss", tp_price: "take-profit", broker_mode: "broker",
  from: "before", to: "after", allow_immediate: "allowed to fill at once", order: "order", order_id: "id",
  class: "class", fill: "fill", error: "error", restore_error: "restore error", restored: "restored",
  action: "action", sent_version: "version sent", current_version: "current version", changes: "",
  entry_at: "entry at", filled: "captured", missing: "missing", cancel_failed: "cancel failed for order",
  live: "real money", filled_qty: "filled contracts", status_reason: "reason", attention_reason: "attention",
  close_reason: "close reason", bracket_order_id: "bracket order", sl_order_id: "stop-loss order",
  tp_order_id: "take-profit order", entry_order_id: "entry order", override_count: "adjustments",
  realized_pnl: "realized P&L", realized_pnl_pct: "realized P&L %", current_bid: "bid", current_ask: "ask",
  current_price: "mark",
};
const PRICE_KEY = /(^|_)(price|bid|ask|mark)$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

function payloadLabel(key) {
  return key in PAYLOAD_LABELS ? PAYLOAD_LABELS[key] : key.replaceAll("_", " ");
}

function payloadValue(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.length ? value.map((item) => payloadValue(key, item)).join(", ") : "none";
  if (typeof value === "object") {
    const parts = Object.entries(value).map(([name, item]) => `${payloadLabel(name)} ${payloadValue(name, item)}`.trim());
    return parts.length ? parts.join(", ") : "none";
  }
  const number = Number(value);
  if (PRICE_KEY.test(key) && Number.isFinite(number)) return number.toFixed(2);
  if (key.endsWith("_pnl") && Number.isFinite(number)) return fmt.money(value);
  if (ISO_TIME.test(value) && !Number.isNaN(Date.parse(value))) return fmt.dateTime(value);
  return String(value);
}

// [["stop-loss", "3.00"], ["order id", "b-1"], ...]: nested objects one level down become
// "parent child" pairs; deeper ones are written inline ("fill: quantity 2, price 4.30").
function payloadPairs(payload) {
  const pairs = [];
  for (const [key, value] of Object.entries(payload)) {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const parent = payloadLabel(key);
      if (!Object.keys(value).length) continue; // "changes": {} says nothing
      for (const [name, item] of Object.entries(value)) {
        pairs.push([[parent, payloadLabel(name)].filter(Boolean).join(" "), payloadValue(name, item)]);
      }
    } else {
      pairs.push([payloadLabel(key), payloadValue(key, value)]);
    }
  }
  return pairs;
}

// The readable pairs, with the stored JSON behind a "raw" toggle for support.
function payloadView(payload) {
  const pairs = payloadPairs(payload);
  return el("div", { className: "payload" },
    pairs.length ? el("ul", { className: "payload-fields" }, pairs.map(([name, value]) => el("li", {},
      el("span", { className: "payload-name", text: `${name}: ` }), el("span", { className: "payload-value", text: value })))) : null,
    el("details", { className: "payload-raw" }, el("summary", { text: "raw" }), el("code", { text: JSON.stringify(payload, null, 1) })));
}

async function loadDetail(id) {
  const row = state.details.get(id);
  if (!row) return;
  let trade;
  let snapshots;
  try {
    [trade, snapshots] = await Promise.all([get(`${config.urls.trades}/${id}`), get(`${config.urls.trades}/${id}/snapshots`)]);
  } catch (error) {
    row.querySelector(".facts").replaceChildren(el("p", { className: "error", text: error.message }));
    return;
  }
  const last = snapshots[snapshots.length - 1] || {};
  row.querySelector(".facts").replaceChildren(
    factList("Quote", [["Bid", fmt.price(trade.current_bid)], ["Ask", fmt.price(trade.current_ask)],
      ["Mark", fmt.price(trade.current_price)], ["Updated", fmt.dateTime(trade.last_updated)], ["Source", orders.sourceLabel(last)],
      ["Underlying", last.underlying ? fmt.price(last.underlying) : null]]),
    factList("Greeks (latest mark)", [["Delta", greek(last.delta)], ["Gamma", greek(last.gamma, 4)], ["Theta", greek(last.theta)],
      ["Vega", greek(last.vega)], ["IV", last.iv ? `${(Number(last.iv) * 100).toFixed(1)}%` : null],
      ["Delta at entry", greek(trade.delta_at_entry)], ["IV at entry", trade.iv_at_entry ? `${(Number(trade.iv_at_entry) * 100).toFixed(1)}%` : null]]),
    factList("Scores and verdicts", [["Card score", trade.card_score], ["AI score", trade.ai_score], ["AI verdict", trade.ai_verdict],
      ["Gate verdict", trade.gate_verdict], ["Technical", trade.technical_score], ["Sentiment", trade.sentiment_score],
      ["Strategy", trade.strategy], ["Best so far (MFE)", trade.max_gain ? fmt.money(trade.max_gain) : null],
      ["Worst so far (MAE)", trade.max_drawdown ? fmt.money(trade.max_drawdown) : null]]));
  const form = row.querySelector("form.adjust-form");
  // Pre-fill the current exits, but never a field the trader has typed in or is about to.
  for (const [name, value] of [["new_sl", trade.sl_price], ["new_tp", trade.tp_price]]) {
    const input = form.elements[name];
    if (!input.dataset.edited && document.activeElement !== input) input.value = Number(value).toFixed(2);
  }
  row.querySelector(".event-log").replaceChildren(...[...trade.events].reverse().map((event) => el("li", {},
    el("time", { datetime: event.created_at, text: fmt.dateTime(event.created_at) }), " ",
    el("strong", { text: event.kind.replaceAll("_", " ").toLowerCase() }),
    event.new_status && event.new_status !== event.old_status ? ` ${event.old_status || "new"} → ${event.new_status}` : "",
    el("span", { className: "muted", text: ` by ${event.actor_username || event.actor_label || event.actor.toLowerCase()}` }),
    Object.keys(event.payload || {}).length ? payloadView(event.payload) : null)));
  state.charts.get(id)?.remove();
  state.charts.set(id, renderChart(row.querySelector(".chart"), trade, snapshots));
}

// --- adjust SL / TP --------------------------------------------------------------------------------

function field(form, name, label) {
  const input = el("input", { id: `${form}-${name}`, name, type: "number", step: "0.01", min: "0.01", inputmode: "decimal",
    "aria-describedby": `${form}-${name}-error` });
  return el("div", {}, el("label", { for: input.id, text: label }), input,
    el("p", { className: "error", id: `${form}-${name}-error`, dataset: { errorFor: name } }));
}

function adjustForm(id) {
  const name = `adjust-${id}`;
  const form = el("form", { className: "adjust-form", novalidate: true, "aria-label": "Adjust stop-loss and take-profit" },
    el("h3", { text: "Adjust exits" }),
    el("p", { className: "error", role: "alert", dataset: { errorFor: "non_field_errors" } }),
    el("div", { className: "grid two" }, field(name, "new_sl", "New stop-loss"), field(name, "new_tp", "New take-profit")),
    el("div", { className: "actions" }, el("button", { type: "submit", className: "save-adjust" }, "Save exits")));
  form.addEventListener("input", (event) => { event.target.dataset.edited = "1"; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitAdjust(id, form);
  });
  return form;
}

function openAdjust(id) {
  if (!state.expanded.has(id)) toggleDetail(id).then(() => focusAdjust(id));
  else focusAdjust(id);
}

function focusAdjust(id) {
  const form = state.details.get(id)?.querySelector("form.adjust-form");
  // The details load while the trader may already have clicked into a field: leave them there.
  if (form && !form.contains(document.activeElement)) form.elements.new_sl.focus();
}

function forgetEdits(form) {
  for (const input of form.querySelectorAll("input[data-edited]")) delete input.dataset.edited;
}

function clearErrors(form) {
  for (const node of form.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

function showErrors(form, error) {
  const fields = error instanceof ApiError ? error.fieldErrors() : { non_field_errors: [String(error)] };
  for (const [attr, details] of Object.entries(fields)) {
    let target = form.querySelector(`[data-error-for="${attr}"]`);
    let text = details.join(" ");
    if (!target) {
      target = form.querySelector('[data-error-for="non_field_errors"]');
      text = attr === "non_field_errors" ? text : `${text}`;
    }
    target.textContent = [target.textContent, text].filter(Boolean).join(" ");
    form.elements[attr]?.setAttribute("aria-invalid", "true");
  }
  form.querySelector("[aria-invalid]")?.focus();
}

async function submitAdjust(id, form) {
  clearErrors(form);
  const trade = state.trades.get(id);
  const body = { version: trade.version };
  const sl = form.elements.new_sl.value.trim();
  const tp = form.elements.new_tp.value.trim();
  if (sl && Number(sl) !== Number(trade.sl_price)) body.new_sl = sl;
  if (tp && Number(tp) !== Number(trade.tp_price)) body.new_tp = tp;
  if (!("new_sl" in body) && !("new_tp" in body)) {
    form.querySelector('[data-error-for="non_field_errors"]').textContent = "Change the stop-loss or the take-profit first.";
    return;
  }
  const button = form.querySelector("button[type=submit]");
  busy(button, "Saving…");
  try {
    const { data } = await post(`${config.urls.trades}/${id}/adjust`, body);
    forgetEdits(form);
    const moved = [body.new_sl ? `stop-loss ${fmt.price(data.sl_price)}` : null, body.new_tp ? `take-profit ${fmt.price(data.tp_price)}` : null];
    toast(`${fmt.shortLabel(data)}: ${moved.filter(Boolean).join(", ")} saved`, "success");
    play("pop");
    await refreshAll();
  } catch (error) {
    if (isConflict(error)) {
      forgetEdits(form);
      conflict();
    } else {
      showErrors(form, error);
    }
  } finally {
    idle(button);
  }
}

// --- close ---------------------------------------------------------------------------------------

const dialog = document.getElementById("close-dialog");
const confirmButton = document.getElementById("close-confirm");
let closing = null;

function busy(button, text) {
  button.dataset.text = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.replaceChildren(el("span", { className: "spinner", "aria-hidden": "true" }), ` ${text}`);
}

function idle(button) {
  button.disabled = false;
  button.removeAttribute("aria-busy");
  if (button.dataset.text) button.textContent = button.dataset.text;
}

function openCloseDialog(id) {
  const trade = state.trades.get(id);
  closing = { id, version: trade.version, opener: document.activeElement };
  document.getElementById("close-dialog-title").textContent = `Close ${fmt.shortLabel(trade)} at market?`;
  document.getElementById("close-dialog-text").textContent =
    `${fmt.contractLabel(trade)}: ${trade.filled_qty || trade.qty} contract(s), mark ${fmt.price(trade.current_price)} ` +
    `(bid ${fmt.price(trade.current_bid)}), unrealized ${fmt.money(trade.unrealized_pnl)}.`;
  document.getElementById("close-dialog-note").textContent = orders.closeNote(trade);
  dialog.showModal();
  document.getElementById("close-cancel").focus();
}

function endDialog() {
  if (dialog.open) dialog.close();
  idle(confirmButton);
  closing?.opener?.isConnected && closing.opener.focus();
  closing = null;
}

async function confirmClose() {
  if (!closing || confirmButton.disabled) return;
  const { id, version } = closing;
  busy(confirmButton, "Closing…");
  try {
    const { status, data } = await post(`${config.urls.trades}/${id}/close`, { version });
    state.closedHere.add(id);
    endDialog();
    play("pop");
    if (status === 200) {
      toast(`Closed ${fmt.shortLabel(data)} at ${fmt.price(data.close_price)}: ${fmt.money(data.realized_pnl)} (${fmt.percent(data.realized_pnl_pct)})`, "success");
    } else {
      toast(orders.closeSentText(data), "info");
    }
    state.historyLoaded = false;
    await refreshAll();
  } catch (error) {
    endDialog();
    if (isConflict(error)) conflict();
    else toast(error.message, "error");
  }
}

function bindDialog() {
  confirmButton.addEventListener("click", confirmClose);
  document.getElementById("close-cancel").addEventListener("click", endDialog);
  dialog.addEventListener("cancel", (event) => {
    if (confirmButton.disabled) {
      event.preventDefault(); // the order is on its way: wait for the answer
      return;
    }
    // After the browser's own close; unless the dialog was opened again meanwhile (Escape, Enter).
    const ending = closing;
    setTimeout(() => { if (closing === ending) endDialog(); });
  });
}

// --- the 409 flow --------------------------------------------------------------------------------

function isConflict(error) {
  return error instanceof ApiError && error.status === 409 && CONFLICT_CODES.has(error.code);
}

function conflict() {
  toast("This trade was updated on another device", "warning");
  setTimeout(() => refreshAll(), 1000);
}

// --- new trade -----------------------------------------------------------------------------------

// Live validation: a while after the last keystroke the form so far goes to the API's validate-only
// twin of "open" (nothing is written or placed there), and its messages are shown next to the
// fields the trader has been at; a message goes as soon as its field is fine. Submit still opens.
const CHECK_MS = 400;
const check = { timer: null, seq: 0, touched: new Set(), body: null, fields: null };
const CHECK_ANSWERS = new Set([400, 409, 422]); // refusals with messages; anything else is Submit's to tell

function newTradeBody(form) {
  const values = Object.fromEntries(new FormData(form));
  const body = {
    ticker: (values.ticker || "").trim().toUpperCase(), expiry: values.expiry, strike: values.strike,
    option_type: values.option_type, qty: Number(values.qty), entry_type: values.entry_type,
    sl_price: values.sl_price, tp_price: values.tp_price, sl_pct: values.sl_pct, tp_pct: values.tp_pct,
  };
  if (values.entry_type === "limit") body.limit_price = values.limit_price;
  if (values.strategy?.trim()) body.strategy = values.strategy.trim();
  for (const [name, value] of Object.entries(body)) if (value === "" || Number.isNaN(value)) delete body[name];
  return body;
}

// Messages about a field of the form go under it (once the trader has been at it); the others (the
// contract as a whole, a risk limit, the broker) go in the form's own box. A text that did not
// change is left alone, so a screen reader does not hear it again.
function showCheck(form, fields) {
  const boxes = new Map([...form.querySelectorAll("[data-error-for]")].map((box) => [box.dataset.errorFor, []]));
  for (const [attr, details] of Object.entries(fields)) {
    if (attr !== "non_field_errors" && boxes.has(attr)) {
      if (check.touched.has(attr)) boxes.get(attr).push(...details);
    } else {
      boxes.get("non_field_errors").push(...details);
    }
  }
  for (const [attr, details] of boxes) {
    const box = form.querySelector(`[data-error-for="${attr}"]`);
    const text = details.join(" ");
    if (box.textContent !== text) box.textContent = text;
    const control = form.elements.namedItem(attr);
    if (control instanceof Element) {
      if (text) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
  }
}

async function runCheck(form) {
  const body = newTradeBody(form);
  const key = JSON.stringify(body);
  if (key === check.body) { // an input and then a change of the same value: one question is enough
    showCheck(form, check.fields);
    return;
  }
  const seq = ++check.seq;
  let fields = {};
  let answer = null;
  try {
    ({ data: answer } = await post(config.urls.validate, body));
  } catch (error) {
    if (!(error instanceof ApiError) || !CHECK_ANSWERS.has(error.status)) return;
    fields = error.fieldErrors();
    if (error.body.preview) answer = error.body; // a risk refusal still shows what the trade would cost
  }
  if (seq !== check.seq || form.hidden) return; // a newer check, a submit or a close came meanwhile
  form.dispatchEvent(new CustomEvent("trade-checked", { detail: answer })); // the preview (order_entry.js)
  check.body = key;
  check.fields = fields;
  showCheck(form, fields);
}

function scheduleCheck(form, event) {
  if (event.target.name) check.touched.add(event.target.name);
  clearTimeout(check.timer);
  check.timer = setTimeout(() => runCheck(form), CHECK_MS);
}

function cancelCheck({ forget = false } = {}) {
  clearTimeout(check.timer);
  check.seq += 1; // an answer still on its way is dropped
  check.body = null;
  if (forget) check.touched.clear();
}

function bindNewTrade() {
  const form = document.getElementById("new-trade");
  const toggle = document.getElementById("new-trade-toggle");
  const show = (visible) => {
    form.hidden = !visible;
    toggle.setAttribute("aria-expanded", String(visible));
    if (visible) form.elements.ticker.focus();
    else {
      cancelCheck();
      toggle.focus();
    }
  };
  toggle.addEventListener("click", () => show(form.hidden));
  document.getElementById("nt-cancel").addEventListener("click", () => show(false));
  const entryType = form.elements.entry_type;
  entryType.addEventListener("change", () => {
    form.elements.limit_price.disabled = entryType.value !== "limit";
    form.elements.limit_price.required = entryType.value === "limit";
  });
  form.addEventListener("input", (event) => scheduleCheck(form, event));
  form.addEventListener("change", (event) => scheduleCheck(form, event));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    cancelCheck();
    for (const control of form.elements) if (control.name) check.touched.add(control.name); // all shown now
    clearErrors(form);
    const body = newTradeBody(form);
    // One key per attempt: a retry after a lost answer (same body) reuses it and gets the first answer.
    const fingerprint = JSON.stringify(body);
    if (form.dataset.fingerprint !== fingerprint) {
      form.dataset.key = newIdempotencyKey();
      form.dataset.fingerprint = fingerprint;
    }
    const button = document.getElementById("nt-submit");
    busy(button, "Opening…");
    try {
      const { data } = await post(config.urls.trades, body, { headers: { "Idempotency-Key": form.dataset.key } });
      delete form.dataset.fingerprint;
      play("pop");
      toast(data.status === "OPEN"
        ? `Opened ${fmt.contractLabel(data)} ×${data.filled_qty || data.qty} at ${fmt.price(data.entry_price)}`
        : `${fmt.contractLabel(data)}: entry order ${data.status.toLowerCase()}`, "success");
      form.reset();
      form.elements.limit_price.disabled = true;
      cancelCheck({ forget: true });
      show(false);
      await refreshAll();
    } catch (error) {
      if (error.status !== 0) delete form.dataset.fingerprint; // an answer came: a new attempt gets a new key
      showErrors(form, error);
    } finally {
      idle(button);
    }
  });
}

// --- history -------------------------------------------------------------------------------------

function historyRow(trade) {
  const reason = trade.close_reason;
  const badge = reason
    ? el("span", { className: `reason reason-${reason.toLowerCase()}`, title: reason, text: fmt.CLOSE_REASONS[reason] || reason })
    : el("span", { className: "reason reason-other", text: trade.status.toLowerCase() });
  return el("tr", { dataset: { tradeId: trade.id } },
    el("th", { scope: "row", dataset: { label: "Contract" }, text: fmt.contractLabel(trade) }),
    el("td", { className: "num", dataset: { label: "Qty" }, text: String(trade.filled_qty || trade.qty) }),
    el("td", { className: "num", dataset: { label: "Entry" }, text: fmt.price(trade.entry_price) }),
    el("td", { className: "num", dataset: { label: "Exit" }, text: fmt.price(trade.close_price) }),
    el("td", { dataset: { label: "Reason" } }, badge),
    el("td", { className: "num", dataset: { label: "Realized P&L" } }, pnl(trade.realized_pnl, trade.realized_pnl_pct)),
    el("td", { className: "num", dataset: { label: "Held" }, text: fmt.hours(trade.hold_duration_h) }),
    el("td", { className: "num", dataset: { label: "MFE / MAE" }, text: `${fmt.money(trade.max_gain)} / ${fmt.money(trade.max_drawdown)}` }),
    el("td", { dataset: { label: "Closed" }, text: fmt.dateTime(trade.close_date) }),
    el("td", { dataset: { label: "Strategy" }, text: trade.strategy || "—" }));
}

async function loadHistory() {
  const form = document.getElementById("history-filters");
  const params = new URLSearchParams();
  const outcome = form.elements.outcome.value;
  const strategy = form.elements.strategy.value.trim();
  if (outcome) params.set("outcome", outcome);
  if (strategy) params.set("strategy", strategy);
  const table = document.getElementById("history");
  table.setAttribute("aria-busy", "true");
  try {
    const page = await get(`${config.urls.history}${params.size ? `?${params}` : ""}`);
    table.querySelector("tbody").replaceChildren(...page.results.map(historyRow));
    document.getElementById("history-empty").hidden = page.results.length > 0;
    state.historyLoaded = true;
  } finally {
    table.removeAttribute("aria-busy");
  }
}

function bindHistory() {
  const form = document.getElementById("history-filters");
  let timer = null;
  form.addEventListener("change", () => loadHistory().catch((error) => toast(error.message, "error")));
  form.elements.strategy.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => loadHistory().catch((error) => toast(error.message, "error")), 300);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
}

// --- performance ---------------------------------------------------------------------------------

async function loadPerformance() {
  const box = document.getElementById("performance");
  try {
    const [performance, calibration, replay] = await Promise.all(
      [config.urls.performance, config.urls.calibration, config.urls.exit_replay].map((url) => get(url)));
    for (const chart of state.performanceCharts) chart?.remove();
    state.performanceCharts = renderPerformance(box, performance, calibration, replay);
  } catch (error) {
    if (error.status === 404) {
      box.replaceChildren(
        el("p", { className: "coming", text: "Performance metrics are coming." }),
        el("p", { className: "muted", text: "Win rate, expectancy, drawdown and the equity curve will appear here once the analytics API is live. No numbers are shown until then." }));
    } else {
      box.replaceChildren(el("p", { className: "error", text: error.message }));
    }
  }
}

// --- refresh and polling -------------------------------------------------------------------------

async function refreshAll() {
  if (state.refreshing) return state.refreshing;
  const stamp = document.getElementById("last-updated");
  state.refreshing = (async () => {
    try {
      const tab = visibleTab();
      await Promise.all([
        loadPositions(),
        loadAccountSummary(),
        tab === "history" || state.historyLoaded ? loadHistory() : null,
        tab === "performance" ? loadPerformance() : null,
      ]);
      state.lastRefresh = Date.now();
      stamp.textContent = `Last updated ${fmt.clock(new Date())}`;
      stamp.classList.remove("error");
    } catch (error) {
      stamp.textContent = `Update failed at ${fmt.clock(new Date())}: ${error.message}`;
      stamp.classList.add("error");
    } finally {
      state.refreshing = null;
      schedule();
    }
  })();
  return state.refreshing;
}

function autoRefreshOn() {
  return document.getElementById("auto-refresh").checked;
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = null;
  if (autoRefreshOn() && !document.hidden) state.timer = setTimeout(refreshAll, REFRESH_MS);
}

function bindRefresh() {
  document.getElementById("refresh-all").addEventListener("click", () => refreshAll());
  const toggle = document.getElementById("auto-refresh");
  toggle.addEventListener("change", async () => {
    const wanted = toggle.checked;
    schedule();
    try {
      await put(config.urls.settings, { auto_refresh: wanted });
      toast(`Auto-refresh ${wanted ? "on" : "off"} (saved)`, "info");
    } catch (error) {
      toggle.checked = !wanted;
      schedule();
      toast(`Could not save auto-refresh: ${error.message}`, "error");
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(state.timer); // paused while nobody looks
      state.timer = null;
    } else if (autoRefreshOn()) {
      if (Date.now() - state.lastRefresh >= REFRESH_MS) refreshAll();
      else schedule();
    }
  });
}

// --- start -----------------------------------------------------------------------------------------

startTopbar();
bindTabs();
bindRefresh();
bindDialog();
bindNewTrade();
bindOrderEntry();
orders.bindWorkingOrders({ refresh: () => refreshAll(), busy, idle });
bindHistory();
refreshAll();

// An event's payload, readable: the keys the services write turned into a trader's words, prices
// and times formatted, with the stored JSON behind a "raw" toggle for support. Also the event log.

import { el } from "./dom.js";
import * as fmt from "./format.js";

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
export function payloadView(payload) {
  const pairs = payloadPairs(payload);
  return el("div", { className: "payload" },
    pairs.length ? el("ul", { className: "payload-fields" }, pairs.map(([name, value]) => el("li", {},
      el("span", { className: "payload-name", text: `${name}: ` }), el("span", { className: "payload-value", text: value })))) : null,
    el("details", { className: "payload-raw" }, el("summary", { text: "raw" }), el("code", { text: JSON.stringify(payload, null, 1) })));
}

// The trade's events, newest first.
export function eventLogItems(events) {
  return [...events].reverse().map((event) => el("li", {},
    el("time", { datetime: event.created_at, text: fmt.dateTime(event.created_at) }), " ",
    el("strong", { text: event.kind.replaceAll("_", " ").toLowerCase() }),
    event.new_status && event.new_status !== event.old_status ? ` ${event.old_status || "new"} → ${event.new_status}` : "",
    el("span", { className: "muted", text: ` by ${event.actor_username || event.actor_label || event.actor.toLowerCase()}` }),
    Object.keys(event.payload || {}).length ? payloadView(event.payload) : null));
}

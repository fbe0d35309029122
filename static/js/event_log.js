// The trade's event log in a trader's words: what happened (the kind's label), who did it (the
// trader, staff, or "the system" — never a task's module name), and the payload's keys and codes
// as words, prices and times formatted. Order tags, module names, paths and URLs (in a broker's
// error text, say) stay out of the readable view: the event as stored is behind a "raw" toggle.

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
// Keys and values only the raw view shows: order tags, and text naming code or machines (a URL, a
// path, a dotted module or host name such as "monitoring.collect_entry_context").
const RAW_ONLY_KEYS = new Set(["tag"]);
const MACHINE_TEXT = /https?:\/\/|\/\w+\/|\b[a-z_]+(\.[a-z_]+)+\b|\w+\.py\b/;
const CODE = /^([a-z0-9]+(_[a-z0-9]+)+|[A-Z]+(_[A-Z]+)*)$/; // "broker_unavailable", "MANUAL_CLOSE"
const OCC_KEY = /(^|_)symbol$/;

function payloadLabel(key) {
  return key in PAYLOAD_LABELS ? PAYLOAD_LABELS[key] : key.replaceAll("_", " ");
}

function shown(key, value) {
  return !RAW_ONLY_KEYS.has(key) && !(typeof value === "string" && MACHINE_TEXT.test(value));
}

function payloadValue(key, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.length ? value.map((item) => payloadValue(key, item)).join(", ") : "none";
  if (typeof value === "object") {
    const entries = Object.entries(value);
    const parts = entries.filter(([name, item]) => shown(name, item))
      .map(([name, item]) => `${payloadLabel(name)} ${payloadValue(name, item)}`.trim());
    if (!parts.length) return entries.length ? "in the raw view" : "none";
    return parts.join(", ");
  }
  const number = Number(value);
  if (PRICE_KEY.test(key) && Number.isFinite(number)) return number.toFixed(2);
  if (key.endsWith("_pnl") && Number.isFinite(number)) return fmt.money(value);
  if (ISO_TIME.test(value) && !Number.isNaN(Date.parse(value))) return fmt.dateTime(value);
  if (OCC_KEY.test(key)) return fmt.occLabel(String(value));
  if (CODE.test(value)) return fmt.words(value).toLowerCase();
  return String(value);
}

// [["stop-loss", "3.00"], ["order id", "b-1"], ...]: nested objects one level down become
// "parent child" pairs; deeper ones are written inline ("fill: quantity 2, price 4.30").
function payloadPairs(payload) {
  const pairs = [];
  for (const [key, value] of Object.entries(payload)) {
    if (!shown(key, value)) continue;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const parent = payloadLabel(key);
      for (const [name, item] of Object.entries(value)) { // "changes": {} says nothing
        if (shown(name, item)) pairs.push([[parent, payloadLabel(name)].filter(Boolean).join(" "), payloadValue(name, item)]);
      }
    } else {
      pairs.push([payloadLabel(key), payloadValue(key, value)]);
    }
  }
  return pairs;
}

// The readable pairs, with the event as stored (its actor's tag included) behind a "raw" toggle.
export function payloadView(payload, stored = payload) {
  const pairs = payloadPairs(payload);
  return el("div", { className: "payload" },
    pairs.length ? el("ul", { className: "payload-fields" }, pairs.map(([name, value]) => el("li", {},
      el("span", { className: "payload-name", text: `${name}: ` }), el("span", { className: "payload-value", text: value })))) : null,
    el("details", { className: "payload-raw" }, el("summary", { text: "raw" }), el("code", { text: JSON.stringify(stored, null, 1) })));
}

// Who acted, as a trader says it: a person by name; a task or command of ours is "the system".
function actorWords(event) {
  if (event.actor === "STAFF") return event.actor_username ? `staff (${event.actor_username})` : "staff";
  if (event.actor === "USER") return event.actor_username || "the trader";
  return "the system";
}

// The trade's events, newest first.
export function eventLogItems(events) {
  return [...events].reverse().map((event) => {
    const { kind, actor, actor_label: tag, old_status: before, new_status: after, payload } = event;
    return el("li", {},
      el("time", { datetime: event.created_at, text: fmt.dateTime(event.created_at) }), " ",
      el("strong", { text: event.kind_label || fmt.words(kind) }),
      after && after !== before ? ` ${before || "new"} → ${after}` : "",
      el("span", { className: "muted", text: ` by ${actorWords(event)}` }),
      payloadView(payload || {}, { kind, actor, actor_label: tag, old_status: before, new_status: after, payload }));
  });
}

// Working orders under the trader's control: a PENDING limit entry can be re-priced or cancelled,
// a CLOSING trade's sell withdrawn or switched between market and limit. Outside market hours an
// order waits for the open: the row, the close dialog and the toasts say so, with the time.

import { ApiError, config, post } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";
import { state } from "./portfolio_state.js";
import { toast } from "./toast.js";
import { closedAt } from "./trade_legs.js";

const ET = { timeZone: "America/New_York" };

// "Wed Dec 2, 09:30 ET": weekday, month in words, 24-hour New York time.
export function sessionTime(iso) {
  const at = new Date(iso);
  const day = at.toLocaleDateString("en-US", { ...ET, weekday: "short", month: "short", day: "numeric" });
  const time = at.toLocaleTimeString("en-GB", { ...ET, hour: "2-digit", minute: "2-digit" });
  return `${day.replace(",", "")}, ${time} ET`;
}

const queuedText = (trade) => (trade.next_session_open ? `queued for the open ${sessionTime(trade.next_session_open)}` : "queued for the open");

// How a pending close sells: "sell at market" or "sell limit 5.10".
function closeOrderText(order) {
  return order.order_type === "limit" ? `sell limit ${fmt.price(order.limit_price)}` : "sell at market";
}

// The tags beside the contract: PENDING / CLOSING (with how the close sells), and "queued for the
// open" while the market is shut.
export function orderBadges(trade) {
  if (trade.status === "OPEN") return [];
  // A space before each tag: a narrow cell may break the line there, never inside the contract.
  const tags = [" ", el("span", { className: `status-tag status-${trade.status.toLowerCase()}`, text: trade.status })];
  if (trade.status === "CLOSING" && trade.close_order) {
    tags.push(" ", el("span", { className: "status-tag status-close-order", title: "The working sell order of this close",
      text: closeOrderText(trade.close_order) }));
  }
  if (trade.queued_for_open) {
    tags.push(" ", el("span", { className: "status-tag status-queued", title: "Waits for the market to open; you can withdraw it until it fills",
      text: queuedText(trade) }));
  }
  return tags;
}

// What the close dialog says before sending.
export function closeNote(trade) {
  if (trade.next_session_open) {
    return `The market is closed: a market sell order is queued for the open at ${sessionTime(trade.next_session_open)}, ` +
      "and fills at the bid then. You can withdraw it until it fills.";
  }
  return "A market sell order is sent at once; it fills at the bid.";
}

export function closeSentText(trade) {
  return trade.queued_for_open
    ? `Close of ${fmt.shortLabel(trade)} ${queuedText(trade)}; you can withdraw it until it fills.`
    : `Close order for ${fmt.shortLabel(trade)} sent; waiting for the fill.`;
}

// --- the actions ---------------------------------------------------------------------------------

let hooks = { refresh: async () => {}, busy: () => {}, idle: () => {} };
const trades = new Map();

export function bindWorkingOrders(given) {
  hooks = { ...hooks, ...given };
  const dialog = document.getElementById("order-dialog");
  document.getElementById("order-dialog-keep").addEventListener("click", () => dialog.close());
  document.getElementById("order-dialog-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendReprice();
  });
  for (const radio of dialog.querySelectorAll("input[name=order_type]")) {
    radio.addEventListener("change", () => syncLimitField());
  }
}

export function orderActions(trade) {
  trades.set(trade.id, trade);
  const label = fmt.shortLabel(trade);
  if (trade.status === "PENDING" && trade.entry_type === "limit") {
    return [
      el("button", { type: "button", className: "secondary reprice", "aria-label": `Re-price the entry of ${label}`,
        onclick: () => openReprice(trade.id, "entry") }, "Re-price"),
      el("button", { type: "button", className: "danger cancel-order", "aria-label": `Cancel the entry of ${label}`,
        onclick: (event) => withdraw(trade.id, "entry", event.currentTarget) }, "Cancel")];
  }
  if (trade.status === "CLOSING") {
    return [
      el("button", { type: "button", className: "secondary reprice", "aria-label": `Switch the close of ${label} between market and limit`,
        onclick: () => openReprice(trade.id, "close") }, "Change"),
      el("button", { type: "button", className: "danger cancel-order", "aria-label": `Withdraw the close of ${label}`,
        onclick: (event) => withdraw(trade.id, "close", event.currentTarget) }, "Withdraw")];
  }
  return null;
}

// The API's refusals in a trader's words; true when the page should show the truth again.
function explain(error, trade, what) {
  const label = fmt.shortLabel(trade);
  if (!(error instanceof ApiError)) return [String(error), false];
  if (error.code === "order_already_filled") {
    const now = error.trade;
    const text = what === "entry"
      ? `${label}: the entry filled before the cancel reached the broker${now?.entry_price ? ` (at ${fmt.price(now.entry_price)})` : ""}; the position is open.`
      : `${label}: the close filled before the cancel reached the broker${now?.close_price ? ` (${closedAt(now)}, ${fmt.money(now.realized_pnl)})` : ""}.`;
    return [text, true];
  }
  if (error.code === "orders_busy") return [`${label}: another request is working this order right now. Try again in a moment.`, true];
  if (error.code === "version_conflict" || error.code === "invalid_state") return ["This trade was updated on another device", true];
  return [error.message, false];
}

async function withdraw(id, what, button) {
  const trade = trades.get(id);
  hooks.busy(button, what === "entry" ? "Cancelling…" : "Withdrawing…");
  try {
    const { data } = await post(`${config.urls.trades}/${id}/${what}/cancel`, { version: trade.version });
    // A cancelled entry leaves the positions: told here, not again by the news of trades that left.
    if (what === "entry") state.closedHere.add(id);
    toast(what === "entry" ? `${fmt.shortLabel(data)}: entry order cancelled` : `${fmt.shortLabel(data)}: close withdrawn; the position is open and protected again`, "success");
    await hooks.refresh();
  } catch (error) {
    const [text, refresh] = explain(error, trade, what);
    toast(text, error.code === "order_already_filled" ? "info" : "warning");
    if (refresh) await hooks.refresh();
  } finally {
    if (button.isConnected) hooks.idle(button);
  }
}

// --- re-price / switch ---------------------------------------------------------------------------

let repricing = null;

function syncLimitField() {
  const form = document.getElementById("order-dialog-form");
  const limit = form.elements.limit_price;
  const market = repricing?.what === "close" && form.elements.order_type.value === "market";
  limit.disabled = market;
  limit.required = !market;
}

function openReprice(id, what) {
  const trade = trades.get(id);
  const dialog = document.getElementById("order-dialog");
  const form = document.getElementById("order-dialog-form");
  repricing = { id, what, opener: document.activeElement };
  form.querySelector("[data-error-for]").textContent = "";
  document.getElementById("order-dialog-title").textContent = what === "entry"
    ? `Re-price the entry of ${fmt.shortLabel(trade)}` : `Change the close of ${fmt.shortLabel(trade)}`;
  const quote = trade.current_bid || trade.current_ask ? `bid ${fmt.price(trade.current_bid)} / ask ${fmt.price(trade.current_ask)}. ` : "";
  document.getElementById("order-dialog-text").textContent = what === "entry"
    ? `Limit now ${fmt.price(trade.planned_entry_price)}. ${quote}The order is cancelled and placed again at the new price, with the same stop-loss and take-profit.`
    : `${quote}The sell order is cancelled and placed again as you choose.`;
  document.getElementById("order-dialog-when").textContent = trade.queued_for_open
    ? `The market is closed: the order stays ${queuedText(trade)}.` : "";
  document.getElementById("order-dialog-type").hidden = what !== "close";
  if (what === "close") form.elements.order_type.value = "limit";
  form.elements.limit_price.value = what === "entry" ? fmt.price(trade.planned_entry_price) : fmt.price(trade.current_bid);
  if (form.elements.limit_price.value === "—") form.elements.limit_price.value = "";
  syncLimitField();
  dialog.showModal();
  form.elements.limit_price.focus();
  dialog.addEventListener("close", () => {
    if (repricing?.opener?.isConnected) repricing.opener.focus();
    repricing = null;
  }, { once: true });
}

async function sendReprice() {
  if (!repricing) return;
  const { id, what } = repricing;
  const trade = trades.get(id);
  const form = document.getElementById("order-dialog-form");
  const box = form.querySelector("[data-error-for]");
  const button = document.getElementById("order-dialog-send");
  const body = { version: trade.version };
  if (what === "close") body.order_type = form.elements.order_type.value;
  if (!form.elements.limit_price.disabled) {
    const price = form.elements.limit_price.value.trim();
    if (!price || !(Number(price) > 0)) {
      box.textContent = "Type a limit price above 0.";
      form.elements.limit_price.focus();
      return;
    }
    body.limit_price = price;
  }
  box.textContent = "";
  hooks.busy(button, "Sending…");
  try {
    const { data } = await post(`${config.urls.trades}/${id}/${what}/reprice`, body);
    document.getElementById("order-dialog").close();
    const price = body.limit_price ? `limit ${fmt.price(body.limit_price)}` : "market";
    toast(what === "entry" ? `${fmt.shortLabel(data)}: entry re-priced to ${price}` : `${fmt.shortLabel(data)}: close now at ${price}`, "success");
    await hooks.refresh();
  } catch (error) {
    const [text, refresh] = explain(error, trade, what);
    if (refresh) {
      document.getElementById("order-dialog").close();
      toast(text, error.code === "order_already_filled" ? "info" : "warning");
      await hooks.refresh();
    } else {
      box.textContent = text; // a price the API refuses: said in the dialog, to be corrected
    }
  } finally {
    hooks.idle(button);
  }
}

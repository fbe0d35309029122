// Closing a position: a confirmation dialog that says what will happen (at once, or queued for the
// open), then the close with the trade's version; the dialog waits while the order is on its way.
// "Contracts to sell" starts at all held; fewer sells a part (`quantity`) and keeps the rest, and
// the API's answer about that number is said beside it, the dialog left open to correct it.
// A spread (a multi-leg trade) closes whole in this release: one market order reverses every leg,
// so the number is shown read-only and never sent.

import { ApiError, config, post } from "./api.js";
import { withFigures } from "./dom.js";
import * as fmt from "./format.js";
import { busy, idle } from "./forms.js";
import { conflict, isConflict, refreshAll, state } from "./portfolio_state.js";
import { play } from "./sound.js";
import { toast } from "./toast.js";
import { closedAt } from "./trade_legs.js";
import * as orders from "./working_orders.js";

const dialog = document.getElementById("close-dialog");
const confirmButton = document.getElementById("close-confirm");
const quantityInput = document.getElementById("close-quantity");
const quantityError = document.getElementById("close-quantity-error");
let closing = null;

const quantityBox = quantityInput.closest(".close-quantity");
const quantityLabel = quantityBox.querySelector("label");
const quantityHint = document.getElementById("close-quantity-hint");
const heldOf = (trade) => trade.quantity_open ?? (trade.filled_qty || trade.qty);
export const isSpread = (trade) => Boolean(trade.strategy_type) && trade.strategy_type !== "single";

// What the dialog says of the position: a spread by its strategy, its units and its held mark (a
// credit's is what buying it back costs), a single option by its contract.
function positionText(trade, held) {
  if (!isSpread(trade)) {
    return `${fmt.contractLabel(trade)}: ${held} contract(s) held, mark ${fmt.price(trade.current_price)} ` +
      `(bid ${fmt.price(trade.current_bid)}), unrealized ${fmt.money(trade.unrealized_pnl_net)} net of commissions.`;
  }
  const legs = (trade.legs || []).length;
  const worth = trade.net_direction === "credit" ? "costs" : "is worth";
  return `${trade.ticker} ${fmt.words(trade.strategy_type).toLowerCase()}: ${held} unit(s) of ${legs} legs held; ` +
    `it ${worth} ${fmt.price(trade.current_price)} at the mid (${fmt.price(trade.current_bid)} at the legs' ` +
    `natural sides), unrealized ${fmt.money(trade.unrealized_pnl_net)} net of commissions.`;
}

const labelOf = (trade) =>
  isSpread(trade) ? `${trade.ticker} ${fmt.words(trade.strategy_type).toLowerCase()}` : fmt.shortLabel(trade);

function showQuantity(trade, held) {
  const spread = isSpread(trade);
  quantityInput.value = String(held);
  quantityInput.max = String(held);
  quantityInput.readOnly = spread;
  quantityLabel.textContent = spread ? "Units to close" : "Contracts to sell";
  quantityHint.textContent = spread
    ? "A spread closes whole: one market order sells every long leg and buys back every short one."
    : "All held closes the position; fewer sells a part and keeps the rest.";
}

function clearQuantityError() {
  quantityError.textContent = "";
  quantityInput.removeAttribute("aria-invalid");
}

// The button says what it will do: all of it, or a part.
function nameTheSale() {
  if (!closing || confirmButton.disabled) return;
  const asked = quantityInput.value.trim();
  const part = !closing.spread && /^\d+$/.test(asked) && Number(asked) >= 1 && Number(asked) < closing.held;
  confirmButton.textContent = part ? `Sell ${Number(asked)} of ${closing.held} at market` : "Close at market";
}

export function openCloseDialog(id) {
  const trade = state.trades.get(id);
  const held = heldOf(trade);
  const spread = isSpread(trade);
  closing = { id, version: trade.version, held, spread, opener: document.activeElement };
  const label = labelOf(trade);
  document.getElementById("close-dialog-title").textContent = `Close ${label} at market?`;
  document.getElementById("close-dialog-text").replaceChildren(...withFigures(positionText(trade, held)));
  document.getElementById("close-dialog-note").textContent = spread
    ? "One market order closes every leg together: each long leg sold at its bid, each short one bought back at its ask."
    : orders.closeNote(trade);
  showQuantity(trade, held);
  clearQuantityError();
  nameTheSale();
  dialog.showModal();
  document.getElementById("close-cancel").focus();
}

function endDialog() {
  if (dialog.open) dialog.close();
  idle(confirmButton);
  confirmButton.textContent = "Close at market";
  closing?.opener?.isConnected && closing.opener.focus();
  closing = null;
}

// Blank or all held: the whole position (no `quantity`); anything else is the API's to judge. A
// spread's is never sent: it closes whole.
function askedQuantity() {
  if (closing.spread) return {};
  const asked = quantityInput.value.trim();
  if (!asked || asked === String(closing.held)) return {};
  return { quantity: /^-?\d+$/.test(asked) ? Number(asked) : asked };
}

function soldText(data) {
  const part = (data.parts || []).at(-1);
  if (!part) return `Sold part of ${fmt.shortLabel(data)}`;
  return `Sold ${part.quantity} of ${fmt.shortLabel(data)} at ${fmt.price(part.price)}: ${fmt.money(part.pnl_net)} net, ` +
    `${fmt.money(part.pnl_gross)} before commissions; ${data.quantity_open} still held`;
}

async function confirmClose() {
  if (!closing || confirmButton.disabled) return;
  const { id, version } = closing;
  const quantity = askedQuantity();
  clearQuantityError();
  busy(confirmButton, "Closing…");
  try {
    const { status, data } = await post(`${config.urls.trades}/${id}/close`, { version, ...quantity });
    const whole = data.status !== "OPEN";
    if (whole) state.closedHere.add(id);
    endDialog();
    play("pop");
    if (status === 200 && whole) {
      toast(`Closed ${labelOf(data)} ${closedAt(data)}: ${fmt.money(data.realized_pnl_net)} net, ${fmt.money(data.realized_pnl_gross)} (${fmt.percent(data.realized_pnl_pct)}) before commissions`, "success");
    } else if (status === 200) {
      toast(soldText(data), "success");
    } else {
      toast(orders.closeSentText(data), "info");
    }
    state.historyLoaded = false;
    await refreshAll();
  } catch (error) {
    const about = error instanceof ApiError && error.status === 400 ? error.fieldErrors().quantity : null;
    if (about) {
      idle(confirmButton);
      nameTheSale();
      quantityError.textContent = about.join(" ");
      quantityInput.setAttribute("aria-invalid", "true");
      quantityInput.focus();
      return;
    }
    endDialog();
    if (isConflict(error)) conflict();
    else toast(error.message, "error");
  }
}

export function bindCloseDialog() {
  confirmButton.addEventListener("click", confirmClose);
  document.getElementById("close-cancel").addEventListener("click", endDialog);
  quantityInput.addEventListener("input", () => {
    clearQuantityError();
    nameTheSale();
  });
  quantityInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // the dialog's form would otherwise close it unsent
      confirmClose();
    }
  });
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

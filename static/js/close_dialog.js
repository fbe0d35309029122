// Closing a position: a confirmation dialog that says what will happen (at once, or queued for the
// open), then the close with the trade's version; the dialog waits while the order is on its way.

import { config, post } from "./api.js";
import { withFigures } from "./dom.js";
import * as fmt from "./format.js";
import { busy, idle } from "./forms.js";
import { conflict, isConflict, refreshAll, state } from "./portfolio_state.js";
import { play } from "./sound.js";
import { toast } from "./toast.js";
import * as orders from "./working_orders.js";

const dialog = document.getElementById("close-dialog");
const confirmButton = document.getElementById("close-confirm");
let closing = null;

export function openCloseDialog(id) {
  const trade = state.trades.get(id);
  closing = { id, version: trade.version, opener: document.activeElement };
  document.getElementById("close-dialog-title").textContent = `Close ${fmt.shortLabel(trade)} at market?`;
  document.getElementById("close-dialog-text").replaceChildren(...withFigures(
    `${fmt.contractLabel(trade)}: ${trade.filled_qty || trade.qty} contract(s), mark ${fmt.price(trade.current_price)} ` +
    `(bid ${fmt.price(trade.current_bid)}), unrealized ${fmt.money(trade.unrealized_pnl_net)} net of commissions.`));
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
      toast(`Closed ${fmt.shortLabel(data)} at ${fmt.price(data.close_price)}: ${fmt.money(data.realized_pnl_net)} net, ${fmt.money(data.realized_pnl_gross)} (${fmt.percent(data.realized_pnl_pct)}) before commissions`, "success");
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

export function bindCloseDialog() {
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

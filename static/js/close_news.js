// News of positions that left the open list since the last poll (a take-profit, a stop, an expiry,
// a close from another device): a sound, a toast and, if the trader opted in, a notification.
// A close this page made itself is not announced twice.

import { config, get } from "./api.js";
import * as fmt from "./format.js";
import { notify } from "./notify.js";
import { state } from "./portfolio_state.js";
import { play } from "./sound.js";
import { toast } from "./toast.js";

export async function announceCloses(active) {
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
    const amount = `${fmt.money(trade.realized_pnl_net)} net of commissions`;
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
    return [Number(trade.realized_pnl_net) > 0 ? "profit" : "loss",
      `${label}: ${fmt.CLOSE_REASONS[trade.close_reason] || "closed"}, ${amount}`, "info"];
  }
  return [null, `${label}: ${trade.status.toLowerCase()}${trade.status_reason ? ` (${trade.status_reason})` : ""}`, "warning"];
}

// A position's mark as the row shows it: never dressed as live when it is not. While the market is
// closed it carries its age ("last quote Fri 16:00", New York time); while the market reads open but
// the source has nothing new (the API's `mark_frozen`, e.g. FORCE_MARKET_OPEN on a weekend) it says
// "frozen"; a source late by design says "delayed". The API decides; this file only words it.

import { el } from "./dom.js";
import * as fmt from "./format.js";

const ET = { timeZone: "America/New_York" };

// "Fri 16:00" (New York).
function quoteTime(iso) {
  const at = new Date(iso);
  const day = at.toLocaleDateString("en-US", { ...ET, weekday: "short" });
  return `${day} ${at.toLocaleTimeString("en-GB", { ...ET, hour: "2-digit", minute: "2-digit" })}`;
}

// The source's own quote time when the API knows it, else when the monitor took the mark.
const quotedAt = (trade) => trade.mark_quote_time || trade.last_updated;

// Not live: the market is closed (the trade's session says so), or the source has nothing new.
export const markIsLive = (trade) => !trade.next_session_open && !trade.mark_frozen;

// The mark's age while it is not live: shown, and the mark styled not-live.
export function markAge(trade) {
  if (markIsLive(trade) || !quotedAt(trade)) return null;
  if (trade.next_session_open) return el("small", { className: "mark-age", text: `last quote ${quoteTime(quotedAt(trade))}` });
  return el("small", { className: "mark-age mark-frozen", title: `The market reads open but ${trade.mark_source || "the source"} has nothing new`,
    text: `frozen, last quote ${quoteTime(quotedAt(trade))}` });
}

export function delayedTag(trade) {
  if (!trade.mark_delayed) return null;
  return el("small", { className: "mark-delayed", title: `${trade.mark_source || "The source"} quotes are 15 minutes late by design`, text: "delayed" });
}

// The mark cell's content: the mark (bid / ask on hover and for screen readers), its age, "delayed".
export function markCell(trade) {
  // A spread's bid and ask are held prices at the legs' natural sides (docs/spreads.md, "Marks").
  const spread = trade.strategy_type && trade.strategy_type !== "single";
  const bidAsk = spread
    ? `close at natural ${fmt.price(trade.current_bid)} / open at natural ${fmt.price(trade.current_ask)}`
    : `bid ${fmt.price(trade.current_bid)} / ask ${fmt.price(trade.current_ask)}`;
  const words = [trade.mark_delayed ? "delayed" : null, trade.mark_frozen ? "frozen" : null].filter(Boolean).join(", ");
  return el("span", {},
    el("span", { className: "mark", title: bidAsk, tabindex: "0", "aria-label": `mark ${fmt.price(trade.current_price)}${words ? ` (${words})` : ""}, ${bidAsk}`,
      text: fmt.price(trade.current_price) }),
    markAge(trade), delayedTag(trade));
}

// "orats (delayed)" for a snapshot's source.
export function sourceLabel(snapshot) {
  if (!snapshot?.source) return null;
  return snapshot.delayed ? `${snapshot.source} (delayed)` : snapshot.source;
}

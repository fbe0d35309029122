// A position that left in parts (docs/pnl.md, "Partial closes"): "2 of 4" where the contracts held
// are fewer than those bought, and a "Parts" block listing each part sold (a scale-out, a partial
// close, an exit order filled in part, the final exit) with its net P&L and, beneath, its gross and
// costs. A trade that left in one piece shows no block: its row already says it all.

import { el } from "./dom.js";
import * as fmt from "./format.js";
import { netPnl } from "./pnl.js";

const SPLITTING = ["SCALE_OUT", "PARTIAL_CLOSE", "EXIT_LEG"];

function bought(trade) {
  return trade.filled_qty || trade.qty;
}

// "2 of 4" once part of a held position was sold, else the contracts as a plain count.
export function heldCell(trade) {
  const all = bought(trade);
  const held = trade.quantity_open;
  if (held === undefined || held === null || held >= all || !["OPEN", "CLOSING"].includes(trade.status)) {
    return el("span", { text: String(all) });
  }
  return el("span", { className: "held-of nowrap", title: `${held} of the ${all} contracts bought are still held`,
    text: `${held} of ${all}` });
}

export function leftInParts(trade) {
  const parts = trade.parts || [];
  return parts.length > 1 || parts.some((part) => SPLITTING.includes(part.reason));
}

function partItem(part) {
  return el("li", { className: "exit-part", dataset: { reason: part.reason } },
    el("span", { className: "part-what" },
      el("span", { className: "part-reason", text: part.reason_label }),
      el("small", { className: "muted block", text: fmt.dateTime(part.at) })),
    el("span", { className: "part-fill num", text: `${part.quantity} × ${fmt.price(part.price)}` }),
    el("span", { className: "part-pnl num" }, netPnl(part.pnl_net, part.pnl_gross)));
}

// The parts block, or null when the trade left (or is leaving) in one piece.
export function partsBlock(trade) {
  if (!leftInParts(trade)) return null;
  const sold = trade.parts.reduce((sum, part) => sum + part.quantity, 0);
  const held = trade.quantity_open ? `, ${trade.quantity_open} still held` : "";
  return el("section", { className: "exit-parts", "aria-label": "Parts sold" },
    el("h3", { text: "Parts" }),
    el("p", { className: "muted", text: `${sold} of ${bought(trade)} contracts sold in ${trade.parts.length} part${trade.parts.length === 1 ? "" : "s"}${held}.` }),
    el("ol", { className: "exit-part-list" }, trade.parts.map(partItem)));
}

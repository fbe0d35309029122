// A P&L figure as the tables show it: amount, percent and the word (gain / loss / flat), coloured.

import { el, withFigures } from "./dom.js";
import * as fmt from "./format.js";

export function pnl(amount, pct) {
  const word = fmt.direction(amount);
  const label = { gain: "gain", loss: "loss", flat: "flat", none: "" }[word];
  // Each part is kept whole (CSS); the spaces between them, outside, are where a narrow cell may wrap.
  const hasPct = pct !== undefined && pct !== null;
  return el("span", { className: `pnl pnl-${word}` },
    el("span", { className: "pnl-amount", text: fmt.money(amount) }),
    hasPct ? [" ", el("span", { className: "pnl-pct", text: `(${fmt.percent(pct)})` })] : null,
    label ? [" ", el("span", { className: "pnl-word", text: label })] : null);
}

// What the net figures leave out, said where they are shown (header tooltip and phone label).
export const UNREALIZED_NET_NOTE = "Net: P&L at the mark less the entry commission paid, the commission partial exits paid and the commission selling now would cost.";
export const REALIZED_NET_NOTE = "Net: P&L after the entry and exit commissions and fees.";

// A net P&L, and on a second line its gross (premiums only, with its percent of the entry) and what
// commissions and fees took, each figure kept whole (a narrow cell wraps between them, never inside).
export function netPnl(net, gross, grossPct) {
  if (net === null || net === undefined || gross === null || gross === undefined) return pnl(net);
  const costs = (Number(net) - Number(gross)).toFixed(2);
  const pct = grossPct !== undefined && grossPct !== null ? ` (${fmt.percent(grossPct)})` : "";
  return el("span", { className: "pnl-net" }, pnl(net),
    el("small", { className: "muted block pnl-gross" }, withFigures(`gross ${fmt.money(gross)}${pct}, costs ${fmt.money(costs)}`)));
}

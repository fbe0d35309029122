// A P&L figure as the tables show it: amount, percent and the word (gain / loss / flat), coloured.

import { el } from "./dom.js";
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

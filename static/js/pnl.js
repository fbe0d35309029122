// A P&L figure as the tables show it: amount, percent and the word (gain / loss / flat), coloured.

import { el } from "./dom.js";
import * as fmt from "./format.js";

export function pnl(amount, pct) {
  const word = fmt.direction(amount);
  const label = { gain: "gain", loss: "loss", flat: "flat", none: "" }[word];
  return el("span", { className: `pnl pnl-${word}` },
    el("span", { className: "pnl-amount", text: fmt.money(amount) }),
    pct !== undefined && pct !== null ? el("span", { className: "pnl-pct", text: ` (${fmt.percent(pct)})` }) : null,
    label ? el("span", { className: "pnl-word", text: ` ${label}` }) : null);
}

// A trade's exit policy as chips on its position row ("trail 15 % after +10 %", "breakeven at +20 %",
// "scale out 50 % at +40 %", "close 15 min before the bell"), and the best bid the trailing stop
// follows. The stop itself is the row's stop-loss cell: the monitor moves it, the row shows it as it
// stands.

import { el } from "./dom.js";
import * as fmt from "./format.js";

const number = (text) => String(Number(text));

function trailing(policy) {
  const by = policy.trail_pct !== undefined ? `${number(policy.trail_pct)}\u00a0%` : `$${fmt.price(policy.trail_amount)}`;
  const after = policy.trail_after_pct !== undefined ? ` after +${number(policy.trail_after_pct)}\u00a0%` : "";
  return `trail ${by}${after}`;
}

function stockTrailing(policy) {
  return policy.underlying_trail_pct !== undefined
    ? `stock trail ${number(policy.underlying_trail_pct)}\u00a0%` : `stock trail $${fmt.price(policy.underlying_trail_amount)}`;
}

// [condition, chip text, what the chip means for a reader who hovers it]
function chips(policy) {
  const has = (key) => policy[key] !== undefined;
  return [
    [has("trail_pct") || has("trail_amount"), () => trailing(policy),
      "A trailing stop on the option: the stop follows the best bid, never down."],
    [has("underlying_trail_pct") || has("underlying_trail_amount"), () => stockTrailing(policy),
      "Closes when the stock falls back this far from its best since the policy was set."],
    [has("breakeven_after_pct"), () => `breakeven at +${number(policy.breakeven_after_pct)}\u00a0%`,
      "The stop moves to the entry plus commissions after this gain."],
    [has("scale_out_at_pct") && has("scale_out_pct"),
      () => `scale out ${number(policy.scale_out_pct)}\u00a0% at +${number(policy.scale_out_at_pct)}\u00a0%`,
      "Sells this share of the contracts once, at this gain over the entry (whole contracts, never all); the rest rides the stop."],
    [has("close_minutes_before_close"), () => `close ${policy.close_minutes_before_close} min before the bell`,
      "Closes this long before the session's close (early closes included)."],
    [has("close_days_to_expiry"), () => `close at ${policy.close_days_to_expiry} DTE`,
      "Closes this many calendar days before expiry."],
    [has("close_after_hours"), () => `close after ${policy.close_after_hours} h`, "Closes after this long held."],
  ].filter(([shown]) => shown);
}

// The chips' words for a policy, or for only some of its settings (`keys`).
export function policyTexts(policy, keys = null) {
  const kept = keys ? Object.fromEntries(Object.entries(policy || {}).filter(([key]) => keys.includes(key))) : policy || {};
  return chips(kept).map(([, text]) => text());
}

export function policyChips(trade) {
  const policy = trade.exit_policy || {};
  const shown = chips(policy);
  if (!shown.length) return null;
  return el("span", { className: "policy-chips" },
    ...shown.map(([, text, title]) => el("span", { className: "policy-chip", title, text: text() })));
}

// Under the stop-loss: the best bid the trailing stop has followed so far, when it trails.
export function trailNote(trade) {
  const policy = trade.exit_policy || {};
  if ((policy.trail_pct === undefined && policy.trail_amount === undefined) || !trade.exit_high_water) return null;
  return el("small", { className: "trail-note block", text: `trailing the best bid ${fmt.price(trade.exit_high_water)}` });
}

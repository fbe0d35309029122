// Editing a position's exit policy in its expanded row: the trailing stop, the breakeven move and
// the time stop before the bell, sent with the trade's version. Settings the form does not show
// (a dollar trail, a stock trail, days to expiry, hours held: set through the API) are kept as they are.

import { config, post } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";
import { busy, clearErrors, idle, showErrors } from "./forms.js";
import { conflict, isConflict, refreshAll, state } from "./portfolio_state.js";
import { toast } from "./toast.js";

// [policy key, label, step]
const FIELDS = [
  ["trail_pct", "Trail by %", "0.1"],
  ["trail_after_pct", "Start trailing after +%", "0.1"],
  ["min_step", "Smallest stop move ($)", "0.01"],
  ["breakeven_after_pct", "Stop to breakeven after +%", "0.1"],
  ["close_minutes_before_close", "Close minutes before the bell", "1"],
];

function field(form, [name, label, step]) {
  const input = el("input", { id: `${form}-${name}`, name, type: "number", step, min: "0", inputmode: "decimal" });
  return el("div", {}, el("label", { for: input.id, text: label }), input);
}

export function policyForm(id) {
  const name = `policy-${id}`;
  const form = el("form", { className: "policy-form", novalidate: true, "aria-label": "Exit policy" },
    el("h3", { text: "Exit policy" }),
    el("p", { className: "error", role: "alert", dataset: { errorFor: "non_field_errors" } }),
    el("div", { className: "grid two" }, FIELDS.map((spec) => field(name, spec))),
    el("p", { className: "error", id: `${name}-error`, dataset: { errorFor: "exit_policy" } }),
    el("div", { className: "actions" }, el("button", { type: "submit", className: "save-policy" }, "Save exit policy")));
  form.addEventListener("input", (event) => { event.target.dataset.edited = "1"; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitPolicy(id, form);
  });
  return form;
}

// Pre-fill the policy in force, never over a field the trader has typed in or is in.
export function prefillPolicy(form, trade) {
  const policy = trade.exit_policy || {};
  for (const [name] of FIELDS) {
    const input = form.elements[name];
    if (!input.dataset.edited && document.activeElement !== input) input.value = policy[name] ?? "";
  }
}

function policyFrom(form, trade) {
  const policy = { ...(trade.exit_policy || {}) };
  for (const [name] of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) policy[name] = value;
    else delete policy[name];
  }
  return policy;
}

async function submitPolicy(id, form) {
  clearErrors(form);
  const trade = state.trades.get(id);
  const button = form.querySelector("button[type=submit]");
  busy(button, "Saving…");
  try {
    const { data } = await post(`${config.urls.trades}/${id}/exit-policy`, { version: trade.version, exit_policy: policyFrom(form, trade) });
    for (const input of form.querySelectorAll("input[data-edited]")) delete input.dataset.edited;
    const some = Object.keys(data.exit_policy).length > 0;
    toast(`${fmt.shortLabel(data)}: exit policy ${some ? "saved" : "removed"}`, "success");
    await refreshAll();
  } catch (error) {
    if (isConflict(error)) conflict();
    else showErrors(form, error);
  } finally {
    idle(button);
  }
}

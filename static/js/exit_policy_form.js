// Editing a position's exit policy in its expanded row: the trailing stop, the breakeven move, the
// scale-out (a share of the contracts sold once at a gain) and the time stop before the bell, sent
// with the trade's version; "Remove policy" clears it all.
// Settings the form does not show (a dollar trail, a stock trail, days to expiry, hours held: set
// through the API) are kept as they are and listed under the fields, except a dollar trail, which a
// trailing percentage typed here replaces (a trailing stop is one or the other).

import { ApiError, config, post } from "./api.js";
import { el } from "./dom.js";
import { policyTexts } from "./exit_policy_chips.js";
import * as fmt from "./format.js";
import { busy, clearErrors, idle, showErrors } from "./forms.js";
import { conflict, isConflict, refreshAll, state } from "./portfolio_state.js";
import { toast } from "./toast.js";

// [policy key, label, step, how the API's messages about the setting begin, after "the" or "a"
// (trades/services/exit_policies.py LABELS)]
const FIELDS = [
  ["trail_pct", "Trail by %", "0.1", "trailing stop's percentage"],
  ["trail_after_pct", "Start trailing after +%", "0.1", "gain that starts the trailing"],
  ["min_step", "Smallest stop move ($)", "0.01", "minimum step of a stop move"],
  ["breakeven_after_pct", "Stop to breakeven after +%", "0.1", "gain that moves the stop to breakeven"],
  ["scale_out_at_pct", "Scale out at +%", "0.1", "gain that sells the first part"],
  ["scale_out_pct", "Share sold there (%)", "1", "share of contracts sold there"],
  ["close_minutes_before_close", "Close minutes before the bell", "1", "minutes before the close"],
];
const SHOWN = FIELDS.map(([name]) => name);
// Messages about a setting as a whole, said beside the field that completes it ("A scale-out needs
// both …", "A scale-out … needs at least 2 contracts").
const WHOLE = [["scale_out_pct", "a scale-out"]];
// A setting typed here replaces the other way of giving the same stop.
const REPLACES = { trail_pct: "trail_amount" };

function field(form, [name, label, step]) {
  const input = el("input", { id: `${form}-${name}`, name, type: "number", step, min: "0", inputmode: "decimal",
    "aria-describedby": `${form}-${name}-error` });
  return el("div", {}, el("label", { for: input.id, text: label }), input,
    el("p", { className: "error", id: `${form}-${name}-error`, dataset: { errorFor: name } }));
}

export function policyForm(id) {
  const name = `policy-${id}`;
  const form = el("form", { className: "policy-form", novalidate: true, "aria-label": "Exit policy" },
    el("h3", { text: "Exit policy" }),
    el("p", { className: "error", role: "alert", dataset: { errorFor: "non_field_errors" } }),
    el("div", { className: "grid two" }, FIELDS.map((spec) => field(name, spec))),
    el("p", { className: "muted policy-kept", hidden: true }),
    el("p", { className: "error", id: `${name}-error`, dataset: { errorFor: "exit_policy" } }),
    el("div", { className: "actions" },
      el("button", { type: "submit", className: "save-policy" }, "Save exit policy"),
      el("button", { type: "button", className: "secondary remove-policy", onclick: () => submitPolicy(id, form, { remove: true }) },
        "Remove policy")));
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
  const kept = policyTexts(policy, Object.keys(policy).filter((key) => !SHOWN.includes(key)));
  const note = form.querySelector(".policy-kept");
  note.hidden = !kept.length;
  note.textContent = kept.length ? `Also in force, set through the API and kept: ${kept.join(", ")}.` : "";
  form.querySelector(".remove-policy").disabled = !Object.keys(policy).length;
}

function policyFrom(form, base) {
  const policy = { ...(base || {}) };
  for (const [name] of FIELDS) {
    const value = form.elements[name].value.trim();
    if (value) {
      policy[name] = value;
      if (REPLACES[name]) delete policy[REPLACES[name]];
    } else delete policy[name];
  }
  return policy;
}

const same = (a, b) => JSON.stringify(Object.entries(a || {}).sort()) === JSON.stringify(Object.entries(b || {}).sort());

// The API's messages about the policy beside the fields they name; the rest under the form.
function showPolicyErrors(form, error) {
  if (!(error instanceof ApiError)) return showErrors(form, error);
  const fields = error.fieldErrors();
  const rest = [];
  for (const message of fields.exit_policy || []) {
    const said = message.toLowerCase();
    const spec = FIELDS.find(([, , , words]) => ["the", "a"].some((article) => said.startsWith(`${article} ${words}`)))
      || FIELDS.find(([name]) => WHOLE.some(([key, start]) => key === name && said.startsWith(start)));
    if (!spec) rest.push(message);
    else {
      const target = form.querySelector(`[data-error-for="${spec[0]}"]`);
      target.textContent = [target.textContent, message].filter(Boolean).join(" ");
      form.elements[spec[0]].setAttribute("aria-invalid", "true");
    }
  }
  delete fields.exit_policy;
  if (rest.length) fields.exit_policy = rest;
  for (const [attr, details] of Object.entries(fields)) {
    const target = form.querySelector(`[data-error-for="${attr}"]`) || form.querySelector('[data-error-for="non_field_errors"]');
    target.textContent = [target.textContent, details.join(" ")].filter(Boolean).join(" ");
  }
  form.querySelector("[aria-invalid]")?.focus();
}

// The trade's version moves whenever its stop does, and an exit policy moves stops: a save that
// meets a newer version of the same policy (the runner moved the stop meanwhile) is sent again
// once with it; a policy changed elsewhere is shown, not overwritten.
async function send(id, base, policy, version) {
  const url = `${config.urls.trades}/${id}/exit-policy`;
  try {
    return await post(url, { version, exit_policy: policy });
  } catch (error) {
    if (error.code !== "version_conflict" || !error.trade || !same(error.trade.exit_policy, base)) throw error;
    return post(url, { version: error.trade.version, exit_policy: policy });
  }
}

async function submitPolicy(id, form, { remove = false } = {}) {
  clearErrors(form);
  const trade = state.trades.get(id);
  const base = trade.exit_policy || {};
  const button = form.querySelector(remove ? ".remove-policy" : "button[type=submit]");
  busy(button, remove ? "Removing…" : "Saving…");
  try {
    const { data } = await send(id, base, remove ? {} : policyFrom(form, base), trade.version);
    for (const input of form.querySelectorAll("input[data-edited]")) delete input.dataset.edited;
    if (remove) for (const [name] of FIELDS) form.elements[name].value = "";
    const some = Object.keys(data.exit_policy).length > 0;
    toast(`${fmt.shortLabel(data)}: exit policy ${some ? "saved" : "removed"}`, "success");
    await refreshAll();
  } catch (error) {
    if (error.code === "version_conflict" && error.trade) {
      const now = policyTexts(error.trade.exit_policy);
      form.querySelector('[data-error-for="non_field_errors"]').textContent =
        `The exit policy was changed elsewhere since you loaded it (now: ${now.length ? now.join(", ") : "none"}). Check the fields and save again.`;
      await refreshAll();
    } else if (isConflict(error)) conflict();
    else showPolicyErrors(form, error);
  } finally {
    idle(button);
    // Nothing to remove once there is no policy (the refresh above may have said so before `idle`).
    form.querySelector(".remove-policy").disabled = !Object.keys(state.trades.get(id)?.exit_policy || {}).length;
  }
}

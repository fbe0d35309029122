// Moving a position's stop-loss or take-profit: the form in the expanded row, pre-filled with the
// current exits (never over what the trader typed), sent with the trade's version.

import { config, post } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";
import { busy, clearErrors, idle, showErrors } from "./forms.js";
import { conflict, isConflict, refreshAll, state } from "./portfolio_state.js";
import { play } from "./sound.js";
import { toast } from "./toast.js";

function field(form, name, label) {
  const input = el("input", { id: `${form}-${name}`, name, type: "number", step: "0.01", min: "0.01", inputmode: "decimal",
    "aria-describedby": `${form}-${name}-error` });
  return el("div", {}, el("label", { for: input.id, text: label }), input,
    el("p", { className: "error", id: `${form}-${name}-error`, dataset: { errorFor: name } }));
}

export function adjustForm(id) {
  const name = `adjust-${id}`;
  const form = el("form", { className: "adjust-form", novalidate: true, "aria-label": "Adjust stop-loss and take-profit" },
    el("h3", { text: "Adjust exits" }),
    el("p", { className: "error", role: "alert", dataset: { errorFor: "non_field_errors" } }),
    el("div", { className: "grid two" }, field(name, "new_sl", "New stop-loss"), field(name, "new_tp", "New take-profit")),
    el("div", { className: "actions" }, el("button", { type: "submit", className: "save-adjust" }, "Save exits")));
  form.addEventListener("input", (event) => { event.target.dataset.edited = "1"; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitAdjust(id, form);
  });
  return form;
}

// Pre-fill the current exits, but never a field the trader has typed in or is about to.
export function prefillAdjust(form, trade) {
  for (const [name, value] of [["new_sl", trade.sl_price], ["new_tp", trade.tp_price]]) {
    const input = form.elements[name];
    if (!input.dataset.edited && document.activeElement !== input) input.value = Number(value).toFixed(2);
  }
}

export function focusAdjust(id) {
  const form = state.details.get(id)?.querySelector("form.adjust-form");
  // The details load while the trader may already have clicked into a field: leave them there.
  if (form && !form.contains(document.activeElement)) form.elements.new_sl.focus();
}

function forgetEdits(form) {
  for (const input of form.querySelectorAll("input[data-edited]")) delete input.dataset.edited;
}

function stopMoved(error, trade) {
  return isConflict(error) && error.code === "version_conflict" && error.trade
    && Number(error.trade.sl_price) !== Number(trade.sl_price);
}

async function submitAdjust(id, form) {
  clearErrors(form);
  const trade = state.trades.get(id);
  const body = { version: trade.version };
  const sl = form.elements.new_sl.value.trim();
  const tp = form.elements.new_tp.value.trim();
  if (sl && Number(sl) !== Number(trade.sl_price)) body.new_sl = sl;
  if (tp && Number(tp) !== Number(trade.tp_price)) body.new_tp = tp;
  if (!("new_sl" in body) && !("new_tp" in body) && (sl || tp)) {
    form.querySelector('[data-error-for="non_field_errors"]').textContent = "Change the stop-loss or the take-profit first.";
    return;
  } // both left empty: the API names each missing field, shown beside its input
  const button = form.querySelector("button[type=submit]");
  busy(button, "Saving…");
  try {
    const { data } = await post(`${config.urls.trades}/${id}/adjust`, body);
    forgetEdits(form);
    const moved = [body.new_sl ? `stop-loss ${fmt.price(data.sl_price)}` : null, body.new_tp ? `take-profit ${fmt.price(data.tp_price)}` : null];
    toast(`${fmt.shortLabel(data)}: ${moved.filter(Boolean).join(", ")} saved`, "success");
    play("pop");
    await refreshAll();
  } catch (error) {
    if (stopMoved(error, trade)) {
      // The exit policy (or another device) moved the stop meanwhile: the trader decides again,
      // with what they typed still there and the stop as it now stands beside it.
      const by = Object.keys(error.trade.exit_policy || {}).length ? "the exit policy moved it" : "it was changed elsewhere";
      form.querySelector('[data-error-for="new_sl"]').textContent =
        `The stop-loss is now ${fmt.price(error.trade.sl_price)} (${by} since you loaded this trade). Check your exits and save again.`;
      await refreshAll();
    } else if (isConflict(error)) {
      forgetEdits(form);
      conflict();
    } else {
      showErrors(form, error);
    }
  } finally {
    idle(button);
  }
}

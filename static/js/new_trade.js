// The new-trade form: shown and hidden by its toggle, checked live against the API's validate-only
// twin of "open" while the trader types, and sent with an idempotency key per attempt.

import { ApiError, config, newIdempotencyKey, post } from "./api.js";
import * as fmt from "./format.js";
import { busy, clearErrors, idle, showErrors } from "./forms.js";
import { refreshAll } from "./portfolio_state.js";
import { play } from "./sound.js";
import { toast } from "./toast.js";

// Live validation: a while after the last keystroke the form so far goes to the API's validate-only
// twin of "open" (nothing is written or placed there), and its messages are shown next to the
// fields the trader has been at; a message goes as soon as its field is fine. Submit still opens.
const CHECK_MS = 400;
const check = { timer: null, seq: 0, touched: new Set(), body: null, fields: null };
const CHECK_ANSWERS = new Set([400, 409, 422]); // refusals with messages; anything else is Submit's to tell

function newTradeBody(form) {
  const values = Object.fromEntries(new FormData(form));
  const body = {
    ticker: (values.ticker || "").trim().toUpperCase(), expiry: values.expiry, strike: values.strike,
    option_type: values.option_type, qty: values.qty === "" ? "" : Number(values.qty), entry_type: values.entry_type,
    sl_price: values.sl_price, tp_price: values.tp_price, sl_pct: values.sl_pct, tp_pct: values.tp_pct,
  };
  if (values.entry_type === "limit") body.limit_price = values.limit_price;
  if (values.strategy?.trim()) body.strategy = values.strategy.trim();
  for (const [name, value] of Object.entries(body)) if (value === "" || Number.isNaN(value)) delete body[name];
  return body;
}

// Messages about a field of the form go under it (once the trader has been at it); the others (the
// contract as a whole, a risk limit, the broker) go in the form's own box. A text that did not
// change is left alone, so a screen reader does not hear it again.
function showCheck(form, fields) {
  const boxes = new Map([...form.querySelectorAll("[data-error-for]")].map((box) => [box.dataset.errorFor, []]));
  for (const [attr, details] of Object.entries(fields)) {
    if (attr !== "non_field_errors" && boxes.has(attr)) {
      if (check.touched.has(attr)) boxes.get(attr).push(...details);
    } else {
      boxes.get("non_field_errors").push(...details);
    }
  }
  for (const [attr, details] of boxes) {
    const box = form.querySelector(`[data-error-for="${attr}"]`);
    const text = details.join(" ");
    if (box.textContent !== text) box.textContent = text;
    const control = form.elements.namedItem(attr);
    if (control instanceof Element) {
      if (text) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    }
  }
}

async function runCheck(form) {
  const body = newTradeBody(form);
  const key = JSON.stringify(body);
  if (key === check.body) { // an input and then a change of the same value: one question is enough
    showCheck(form, check.fields);
    return;
  }
  const seq = ++check.seq;
  let fields = {};
  let answer = null;
  try {
    ({ data: answer } = await post(config.urls.validate, body));
  } catch (error) {
    if (!(error instanceof ApiError) || !CHECK_ANSWERS.has(error.status)) return;
    fields = error.fieldErrors();
    if (error.body.preview) answer = error.body; // a risk refusal still shows what the trade would cost
  }
  if (seq !== check.seq || form.hidden) return; // a newer check, a submit or a close came meanwhile
  form.dispatchEvent(new CustomEvent("trade-checked", { detail: answer })); // the preview (order_entry.js)
  check.body = key;
  check.fields = fields;
  showCheck(form, fields);
}

function scheduleCheck(form, event) {
  if (event.target.name) check.touched.add(event.target.name);
  clearTimeout(check.timer);
  check.timer = setTimeout(() => runCheck(form), CHECK_MS);
}

function cancelCheck({ forget = false } = {}) {
  clearTimeout(check.timer);
  check.seq += 1; // an answer still on its way is dropped
  check.body = null;
  if (forget) check.touched.clear();
}

export function bindNewTrade() {
  const form = document.getElementById("new-trade");
  const toggle = document.getElementById("new-trade-toggle");
  const show = (visible) => {
    form.hidden = !visible;
    toggle.setAttribute("aria-expanded", String(visible));
    if (visible) form.elements.ticker.focus();
    else {
      cancelCheck();
      toggle.focus();
    }
  };
  toggle.addEventListener("click", () => show(form.hidden));
  document.getElementById("nt-cancel").addEventListener("click", () => show(false));
  const entryType = form.elements.entry_type;
  entryType.addEventListener("change", () => {
    form.elements.limit_price.disabled = entryType.value !== "limit";
    form.elements.limit_price.required = entryType.value === "limit";
  });
  form.addEventListener("input", (event) => scheduleCheck(form, event));
  form.addEventListener("change", (event) => scheduleCheck(form, event));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    cancelCheck();
    for (const control of form.elements) if (control.name) check.touched.add(control.name); // all shown now
    clearErrors(form);
    const body = newTradeBody(form);
    // One key per attempt: a retry after a lost answer (same body) reuses it and gets the first answer.
    const fingerprint = JSON.stringify(body);
    if (form.dataset.fingerprint !== fingerprint) {
      form.dataset.key = newIdempotencyKey();
      form.dataset.fingerprint = fingerprint;
    }
    const button = document.getElementById("nt-submit");
    busy(button, "Opening…");
    try {
      const { data } = await post(config.urls.trades, body, { headers: { "Idempotency-Key": form.dataset.key } });
      delete form.dataset.fingerprint;
      play("pop");
      toast(data.status === "OPEN"
        ? `Opened ${fmt.contractLabel(data)} ×${data.filled_qty || data.qty} at ${fmt.price(data.entry_price)}`
        : `${fmt.contractLabel(data)}: entry order ${data.status.toLowerCase()}`, "success");
      form.reset();
      form.elements.limit_price.disabled = true;
      cancelCheck({ forget: true });
      show(false);
      await refreshAll();
    } catch (error) {
      if (error.status !== 0) delete form.dataset.fingerprint; // an answer came: a new attempt gets a new key
      showErrors(form, error);
    } finally {
      idle(button);
    }
  });
}

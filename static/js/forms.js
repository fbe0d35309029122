// Buttons and forms while a request is on its way: a spinner on the button, and the API's
// messages placed next to the fields they are about.

import { ApiError } from "./api.js";
import { el } from "./dom.js";

export function busy(button, text) {
  button.dataset.text = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.replaceChildren(el("span", { className: "spinner", "aria-hidden": "true" }), ` ${text}`);
}

export function idle(button) {
  button.disabled = false;
  button.removeAttribute("aria-busy");
  if (button.dataset.text) button.textContent = button.dataset.text;
}

export function clearErrors(form) {
  for (const node of form.querySelectorAll("[data-error-for]")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
}

export function showErrors(form, error) {
  const fields = error instanceof ApiError ? error.fieldErrors() : { non_field_errors: [String(error)] };
  for (const [attr, details] of Object.entries(fields)) {
    let target = form.querySelector(`[data-error-for="${attr}"]`);
    let text = details.join(" ");
    if (!target) {
      target = form.querySelector('[data-error-for="non_field_errors"]');
      text = attr === "non_field_errors" ? text : `${text}`;
    }
    target.textContent = [target.textContent, text].filter(Boolean).join(" ");
    form.elements[attr]?.setAttribute("aria-invalid", "true");
  }
  form.querySelector("[aria-invalid]")?.focus();
}

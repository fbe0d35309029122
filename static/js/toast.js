// Short messages in a polite live region; warnings and errors stay a little longer.

import { withFigures } from "./dom.js";

const LIFETIME = { success: 4000, info: 4000, warning: 6000, error: 8000 };

export function toast(message, kind = "info") {
  const region = document.getElementById("toasts");
  if (!region) return null;
  const item = document.createElement("div");
  item.className = `toast toast-${kind}`;
  item.dataset.kind = kind;
  const text = document.createElement("span");
  text.append(...withFigures(message));
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "toast-dismiss";
  dismiss.setAttribute("aria-label", "Dismiss");
  dismiss.textContent = "×";
  dismiss.addEventListener("click", () => item.remove());
  item.append(text, dismiss);
  region.append(item);
  setTimeout(() => item.remove(), LIFETIME[kind] || 4000);
  return item;
}

// The portfolio page's keyboard: `n` opens the new-trade form, `/` goes to its ticker (the chain
// search), Escape closes what is open. Letters never fire while the trader types in a field or a
// dialog is up; Escape does, as it only ever closes. Everything goes through the page's own buttons,
// so a shortcut does exactly what the click would.

const $ = (id) => document.getElementById(id);

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
}

function openNewTrade() {
  if ($("panel-open").hidden) $("tab-open").click();
  if ($("new-trade").hidden) $("new-trade-toggle").click();
}

// Escape, innermost first. A <dialog> (close, re-price, any other) is the browser's own to close: its
// cancel event runs the dialog's own ending. Then the expanded position the focus is in (its adjust
// form), then the new-trade form.
function escape(event) {
  if (document.querySelector("dialog[open]")) return false;
  const detail = event.target instanceof Element ? event.target.closest("tr.detail") : null;
  if (detail) {
    const toggle = document.querySelector(`tr.position[data-trade-id="${detail.dataset.tradeId}"] button.toggle`);
    if (toggle) {
      toggle.click();
      return true;
    }
  }
  if (!$("new-trade").hidden) {
    $("nt-cancel").click();
    return true;
  }
  return false;
}

const SHORTCUTS = {
  n: openNewTrade,
  "/": () => {
    openNewTrade();
    const ticker = $("new-trade").elements.ticker;
    ticker.focus();
    ticker.select();
  },
};

export function bindKeyboard() {
  if (!$("new-trade")) return;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || event.isComposing) return;
    if (event.key === "Escape") {
      if (escape(event)) event.preventDefault();
      return;
    }
    const shortcut = SHORTCUTS[event.key];
    if (!shortcut || typing(event.target) || document.querySelector("dialog[open]")) return;
    event.preventDefault();
    shortcut();
  });
}

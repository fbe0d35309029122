// The history tab: closed trades with their exit reason and realized P&L, filtered by outcome and
// strategy; "Explain" opens a row below with the trade explained (trade_explanation.js).

import { config, get } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";
import { REALIZED_NET_NOTE, netPnl } from "./pnl.js";
import { state } from "./portfolio_state.js";
import { toast } from "./toast.js";
import { explanationGroups } from "./trade_explanation.js";

// Open explanations by trade id, kept across the refreshes that redraw the table.
const opened = new Map();

function markOpen(button, open) {
  button.setAttribute("aria-expanded", String(open));
  button.textContent = open ? "Hide" : "Explain";
}

async function toggleExplanation(button, id) {
  const row = button.closest("tr");
  const shown = opened.get(id);
  markOpen(button, !shown);
  if (shown) {
    shown.remove();
    opened.delete(id);
    return;
  }
  const section = el("section", { className: "explanation", "aria-label": "The trade explained" },
    el("p", { className: "muted", text: "Loading…" }));
  const detail = el("tr", { className: "detail", id: `history-detail-${id}` },
    el("td", { colspan: "11" }, el("div", { className: "detail-inner" }, section)));
  opened.set(id, detail);
  row.after(detail);
  try {
    const trade = await get(`${config.urls.trades}/${id}`);
    section.replaceChildren(...explanationGroups(trade.explanation));
  } catch (error) {
    section.replaceChildren(el("p", { className: "error", text: error.message }));
  }
}

function historyRow(trade) {
  const reason = trade.close_reason;
  const badge = reason
    ? el("span", { className: `reason reason-${reason.toLowerCase()}`, title: reason, text: fmt.CLOSE_REASONS[reason] || reason })
    : el("span", { className: "reason reason-other", text: trade.status.toLowerCase() });
  return el("tr", { dataset: { tradeId: trade.id } },
    el("th", { scope: "row", dataset: { label: "Contract" }, text: fmt.contractLabel(trade) }),
    el("td", { className: "num", dataset: { label: "Qty" }, text: String(trade.filled_qty || trade.qty) }),
    el("td", { className: "num", dataset: { label: "Entry" }, text: fmt.price(trade.entry_price) }),
    el("td", { className: "num", dataset: { label: "Exit" }, text: fmt.price(trade.close_price) }),
    el("td", { dataset: { label: "Reason" } }, badge),
    el("td", { className: "num", title: REALIZED_NET_NOTE, dataset: { label: "Realized P&L, net" } },
      netPnl(trade.realized_pnl_net, trade.realized_pnl_gross, trade.realized_pnl_pct)),
    el("td", { className: "num", dataset: { label: "Held" }, text: fmt.hours(trade.hold_duration_h) }),
    el("td", { className: "num", dataset: { label: "MFE / MAE" }, text: `${fmt.money(trade.max_gain)} / ${fmt.money(trade.max_drawdown)}` }),
    el("td", { dataset: { label: "Closed" }, text: fmt.dateTime(trade.close_date) }),
    el("td", { dataset: { label: "Strategy" }, text: trade.strategy || "—" }),
    el("td", { className: "row-actions" },
      el("button", { type: "button", className: "secondary explain", "aria-expanded": "false",
        "aria-controls": `history-detail-${trade.id}`, "aria-label": `Explain ${fmt.contractLabel(trade)}`,
        onclick: (event) => toggleExplanation(event.currentTarget, trade.id) }, "Explain")));
}

export async function loadHistory() {
  const form = document.getElementById("history-filters");
  const params = new URLSearchParams();
  const outcome = form.elements.outcome.value;
  const strategy = form.elements.strategy.value.trim();
  if (outcome) params.set("outcome", outcome);
  if (strategy) params.set("strategy", strategy);
  const table = document.getElementById("history");
  table.setAttribute("aria-busy", "true");
  try {
    const page = await get(`${config.urls.history}${params.size ? `?${params}` : ""}`);
    table.querySelector("tbody").replaceChildren(...page.results.map(historyRow));
    for (const [id, detail] of opened) {
      const button = table.querySelector(`tr[data-trade-id="${id}"] button.explain`);
      if (button) {
        button.closest("tr").after(detail);
        markOpen(button, true);
      } else opened.delete(id);
    }
    document.getElementById("history-empty").hidden = page.results.length > 0;
    state.historyLoaded = true;
  } finally {
    table.removeAttribute("aria-busy");
  }
}

export function bindHistory() {
  const form = document.getElementById("history-filters");
  let timer = null;
  form.addEventListener("change", () => loadHistory().catch((error) => toast(error.message, "error")));
  form.elements.strategy.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => loadHistory().catch((error) => toast(error.message, "error")), 300);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
}

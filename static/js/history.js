// The history tab: finished trades a page at a time, filtered (outcome, strategy, ticker, close
// reason, New York days), sorted by a column, summed up over every page, and the trades that never
// filled with their reasons. The form holds the filters and the sort; they and the page live in the
// URL's query string, so a filtered view can be bookmarked and reloaded; "Explain" opens a row
// below with the trade explained (trade_explanation.js).

import { ApiError, config, get } from "./api.js";
import { el } from "./dom.js";
import { partsBlock } from "./exit_parts.js";
import * as fmt from "./format.js";
import { clearErrors, showErrors } from "./forms.js";
import { REALIZED_NET_NOTE, netPnl } from "./pnl.js";
import { state } from "./portfolio_state.js";
import { toast } from "./toast.js";
import { explanationGroups } from "./trade_explanation.js";
import { contractCell, isSpread, legsBlock, netPrice } from "./trade_legs.js";

// Open explanations by trade id, kept across the refreshes that redraw the table.
const opened = new Map();
// The rows shown, by trade id: the Explain row's legs come from the history's own answer (its label).
const listed = new Map();

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
    el("td", { colspan: "11" }, el("div", { className: "detail-inner" }, el("div", { className: "parts-slot" }), section)));
  opened.set(id, detail);
  row.after(detail);
  try {
    const trade = await get(`${config.urls.trades}/${id}`);
    const blocks = [legsBlock(listed.get(id) || trade), partsBlock(trade)].filter(Boolean);
    detail.querySelector(".parts-slot").replaceChildren(...blocks);
    section.replaceChildren(...explanationGroups(trade.explanation));
  } catch (error) {
    section.replaceChildren(el("p", { className: "error", text: error.message }));
  }
}

const FILTERS = ["outcome", "strategy", "strategy_type", "ticker", "close_reason", "from", "to"];
const DEFAULT_PAGE_SIZE = "50";
const DIRECTIONS = { number: ["high to low", "low to high"], date: ["newest first", "oldest first"], text: ["Z to A", "A to Z"] };
const view = { page: 1, ready: false, asked: 0 };

const form = () => document.getElementById("history-filters");
const headers = () => [...document.querySelectorAll("#history th[data-sort]")];
const unfilled = () => form().elements.outcome.value === "unfilled";

// The date column sorts by the close, or by when the order was placed for trades that never filled.
function sortKey(th) {
  return th.dataset.sort === "close_date" && unfilled() ? "created_at" : th.dataset.sort;
}

function historyRow(trade) {
  const reason = trade.close_reason;
  const badge = reason
    ? el("span", { className: `reason reason-${reason.toLowerCase()}`, title: reason, text: fmt.CLOSE_REASONS[reason] || reason })
    : el("span", { className: "reason reason-other", text: trade.status.toLowerCase() });
  const why = trade.close_date ? null : el("span", { className: "status-reason", text: trade.status_reason || "no reason recorded" });
  // A spread's prices are held prices (a credit trade's entry is the credit, its exit the buy-back) and its
  // return is on the most it could lose (return_on_max_loss_pct), not on the premium.
  const spread = isSpread(trade);
  listed.set(trade.id, trade);
  const price = (value) => (spread ? netPrice(trade, value) : fmt.price(value));
  return el("tr", { dataset: { tradeId: trade.id, strategyType: trade.strategy_type || "single" } },
    spread
      ? el("th", { scope: "row", dataset: { label: "Contract" } }, ...contractCell(trade))
      : el("th", { scope: "row", dataset: { label: "Contract" }, text: fmt.contractLabel(trade) }),
    el("td", { className: "num", dataset: { label: "Qty" }, text: String(trade.filled_qty || trade.qty) }),
    el("td", { className: "num", dataset: { label: "Entry" }, text: price(trade.entry_price) }),
    el("td", { className: "num", dataset: { label: "Exit" }, text: price(trade.close_price) }),
    el("td", { dataset: { label: "Reason" } }, badge, why),
    el("td", { className: "num", title: spread ? `${REALIZED_NET_NOTE} The % is the gross P&L on the max loss at entry.` : REALIZED_NET_NOTE,
      dataset: { label: "Realized P&L, net" } },
    netPnl(trade.realized_pnl_net, trade.realized_pnl_gross, spread ? trade.return_on_max_loss_pct : trade.realized_pnl_pct)),
    el("td", { className: "num", dataset: { label: "Held" }, text: fmt.hours(trade.hold_duration_h) }),
    el("td", { className: "num", dataset: { label: "MFE / MAE" }, text: `${fmt.money(trade.max_gain)} / ${fmt.money(trade.max_drawdown)}` }),
    trade.close_date
      ? el("td", { dataset: { label: "Closed" }, text: fmt.dateTime(trade.close_date) })
      : el("td", { dataset: { label: "Placed" }, text: `placed ${fmt.dateTime(trade.created_at)}` }),
    el("td", { dataset: { label: "Strategy" }, text: trade.strategy || "—" }),
    el("td", { className: "row-actions" },
      el("button", { type: "button", className: "secondary explain", "aria-expanded": "false",
        "aria-controls": `history-detail-${trade.id}`, "aria-label": `Explain ${fmt.contractLabel(trade)}`,
        onclick: (event) => toggleExplanation(event.currentTarget, trade.id) }, "Explain")));
}

// An explanation left open stays open when its trade is still on the page.
function reopenExplanations(table) {
  for (const [id, detail] of opened) {
    const button = table.querySelector(`tr[data-trade-id="${id}"] button.explain`);
    if (button) {
      button.closest("tr").after(detail);
      markOpen(button, true);
    } else opened.delete(id);
  }
}

function totalsRow(totals) {
  const count = `${totals.count} trade${totals.count === 1 ? "" : "s"}`;
  const rate = totals.win_rate === null
    ? "no closed trade"
    : `${Number(totals.win_rate).toFixed(2)}% won (${totals.wins} of ${totals.closed} closed)`;
  return el("tr", { className: "totals" },
    el("th", { scope: "row", colSpan: 5, dataset: { label: "All pages" }, text: `${count} · ${rate}` }),
    el("td", { className: "num", title: REALIZED_NET_NOTE, dataset: { label: "Total P&L, net" } },
      totals.realized_pnl === null ? "—" : netPnl(totals.realized_pnl_net, totals.realized_pnl)),
    el("td", { colSpan: 5, className: "totals-rest" }));
}

// The API's query from the form and the page: only what differs from the defaults.
function query({ withPage = true } = {}) {
  const params = new URLSearchParams();
  const fields = form().elements;
  for (const name of FILTERS) {
    const value = fields[name].value.trim();
    if (value) params.set(name, value);
  }
  if (fields.ordering.value) params.set("ordering", fields.ordering.value);
  if (fields.page_size.value && fields.page_size.value !== DEFAULT_PAGE_SIZE) params.set("page_size", fields.page_size.value);
  if (withPage && view.page > 1) params.set("page", String(view.page));
  return params;
}

function fillFormFromUrl() {
  const params = new URLSearchParams(location.search);
  const fields = form().elements;
  for (const name of [...FILTERS, "ordering", "page_size"]) {
    if (!params.has(name)) continue;
    if (name === "outcome") {
      const radio = [...fields.outcome].find((input) => input.value === params.get(name));
      if (radio) radio.checked = true;
    } else {
      const field = fields[name];
      const value = params.get(name);
      // A page size the list does not offer (an address written by hand) is offered for this view.
      if (name === "page_size" && ![...field.options].some((option) => option.value === value)) {
        field.append(el("option", { value, text: value }));
      }
      field.value = value;
    }
  }
  view.page = Math.max(1, Number.parseInt(params.get("page"), 10) || 1);
}

// The sort as a list too (a phone shows no column headers): every column, both ways.
function sortOptions(wanted) {
  const select = form().elements.ordering;
  const options = [el("option", { value: "", text: unfilled() ? "Placed, newest first" : "Closed, newest first" })];
  for (const th of headers()) {
    const label = th.textContent.trim();
    const [down, up] = DIRECTIONS[th.dataset.kind];
    options.push(el("option", { value: `-${sortKey(th)}`, text: `${label}, ${down}` }),
      el("option", { value: sortKey(th), text: `${label}, ${up}` }));
  }
  select.replaceChildren(...options);
  select.value = [...select.options].some((option) => option.value === wanted) ? wanted : "";
}

function markSorted() {
  const ordering = form().elements.ordering.value || (unfilled() ? "-created_at" : "-close_date");
  const name = ordering.replace(/^-/, "");
  for (const th of headers()) {
    if (sortKey(th) === name) th.setAttribute("aria-sort", ordering.startsWith("-") ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
}

function pageLink(number, text, { current = false, label } = {}) {
  const params = query({ withPage: false });
  if (number > 1) params.set("page", String(number));
  return el("a", {
    href: `${location.pathname}${params.size ? `?${params}` : ""}#history`, text, className: "page-link",
    "aria-current": current ? "page" : null, "aria-label": label, dataset: { page: number },
  });
}

// First, last, and two either side of the current page; gaps as an ellipsis.
function pager(body) {
  const nav = document.getElementById("history-pager");
  if (!body.count) return nav.replaceChildren();
  const first = (body.page - 1) * body.page_size + 1;
  const last = first + body.results.length - 1;
  const items = [el("span", { className: "page-count", text: `${first}–${last} of ${body.count}` })];
  if (body.page > 1) items.push(pageLink(body.page - 1, "‹ Previous", { label: "Previous page" }));
  let gap = false;
  for (let number = 1; number <= body.pages; number += 1) {
    if (number === 1 || number === body.pages || Math.abs(number - body.page) <= 2) {
      items.push(pageLink(number, String(number), { current: number === body.page, label: `Page ${number}` }));
      gap = false;
    } else if (!gap) {
      items.push(el("span", { className: "page-gap", text: "…", "aria-hidden": "true" }));
      gap = true;
    }
  }
  if (body.page < body.pages) items.push(pageLink(body.page + 1, "Next ›", { label: "Next page" }));
  nav.replaceChildren(...items);
}

// The exports carry the same filters; without an outcome the history is the closed trades.
function exportLinks() {
  const params = query({ withPage: false });
  params.delete("ordering");
  params.delete("page_size");
  if (!params.has("outcome")) params.set("status", "CLOSED");
  for (const kind of ["csv", "json"]) {
    document.getElementById(`export-${kind}`).href = `${config.urls.export}?format=${kind}&${params}`;
  }
}

function rememberInUrl() {
  if (document.getElementById("panel-history").hidden) return; // another tab owns the address now
  const params = query();
  history.replaceState(null, "", `${location.pathname}${params.size ? `?${params}` : ""}#history`);
}

// Once, before the first load (the tabs may load the history before bindHistory runs): the
// form from the address the page was opened at.
function ready() {
  if (view.ready) return;
  view.ready = true;
  fillFormFromUrl();
  sortOptions(new URLSearchParams(location.search).get("ordering") || "");
}

export async function loadHistory() {
  ready();
  const table = document.getElementById("history");
  markSorted();
  exportLinks();
  rememberInUrl();
  table.setAttribute("aria-busy", "true");
  clearErrors(form());
  const asked = ++view.asked;
  try {
    const body = await get(`${config.urls.history}?${query()}`);
    if (asked !== view.asked) return; // a later change asked again: its answer is the one to show
    table.querySelector("tbody").replaceChildren(...body.results.map(historyRow));
    reopenExplanations(table);
    document.getElementById("history-totals").replaceChildren(totalsRow(body.totals));
    document.getElementById("history-empty").hidden = body.results.length > 0;
    pager(body);
    state.historyLoaded = true;
  } catch (error) {
    if (asked !== view.asked) return;
    if (error instanceof ApiError && error.status === 404 && view.page > 1) {
      view.page = 1; // the set shrank under a page that no longer exists: its first page
      return loadHistory();
    }
    if (!(error instanceof ApiError) || error.status !== 400) throw error;
    showErrors(form(), error);
  } finally {
    if (asked === view.asked) table.removeAttribute("aria-busy");
  }
}

const reload = () => loadHistory().catch((error) => toast(error.message, "error"));

function fromFirstPage() {
  view.page = 1;
  reload();
}

export function bindHistory() {
  ready();
  const filters = form();
  let timer = null;
  filters.addEventListener("change", (event) => {
    if (event.target.name === "outcome") sortOptions(filters.elements.ordering.value); // another date column
    fromFirstPage();
  });
  for (const name of ["strategy", "ticker"]) {
    filters.elements[name].addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(fromFirstPage, 300);
    });
  }
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.addEventListener("reset", () => setTimeout(() => {
    sortOptions("");
    fromFirstPage();
  }));
  for (const th of headers()) {
    th.querySelector("button").addEventListener("click", () => {
      const select = filters.elements.ordering;
      const key = sortKey(th);
      const current = th.getAttribute("aria-sort");
      // A second click turns the order round; a first sorts text A to Z, numbers and dates high first.
      const descending = current ? current === "ascending" : th.dataset.kind !== "text";
      select.value = descending ? `-${key}` : key;
      fromFirstPage();
    });
  }
  document.getElementById("history-pager").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-page]");
    if (!link) return;
    event.preventDefault();
    view.page = Number(link.dataset.page);
    reload();
    document.getElementById("history").scrollIntoView({ block: "start" });
  });
}

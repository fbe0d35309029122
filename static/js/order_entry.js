// Order entry on the option chain: the ticker's quote, its listed expiries, the chain around the
// money (a click on a bid or an ask fills the form), stops and targets as a price or as % of the
// entry (or the strategy's preset), and the preview the validate endpoint answers as the form
// changes. The form itself (checks, submit) stays in portfolio.js; it tells this module what
// validate answered through the form's "trade-checked" event.
import { ApiError, config, get } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";

const URLS = { quote: "/api/market/quote", expirations: "/api/market/expirations", chain: "/api/market/chain", ...config.urls };
const TICKER_MS = 350;
const CHAIN_STRIKES = 8;
const state = { ticker: "", expiries: [], seq: 0, timer: null };

const $ = (id) => document.getElementById(id);

function weekday(iso) {
  const [year, month, day] = iso.split("-").map(Number);
  return new Date(Date.UTC(year, month - 1, day)).toLocaleDateString("en-US", { weekday: "short", timeZone: "UTC" });
}


function age(seconds, delayed) {
  if (seconds === null || seconds === undefined) return delayed ? "delayed" : "";
  const text = seconds < 60 ? `${seconds}s old` : seconds < 3600 ? `${Math.floor(seconds / 60)}m old` : `${fmt.duration(seconds * 1000)} old`;
  return delayed ? `${text}, delayed` : text;
}

function problem(error) {
  return error instanceof ApiError ? error.message : "The market data cannot be reached.";
}

// --- quote and expiries --------------------------------------------------------------------------

async function loadTicker(form) {
  const ticker = form.elements.ticker.value.trim().toUpperCase();
  if (ticker === state.ticker) return;
  state.ticker = ticker;
  const seq = ++state.seq;
  const quoteBox = $("oe-quote");
  const select = $("oe-expiry");
  select.replaceChildren(el("option", { value: "" }, "Pick an expiry"));
  select.disabled = true;
  $("oe-chain").replaceChildren();
  $("oe-chain-status").textContent = "";
  if (!ticker) {
    quoteBox.replaceChildren();
    return;
  }
  quoteBox.replaceChildren(el("span", { className: "muted" }, `Looking up ${ticker}…`));
  try {
    const [quotes, expiries] = await Promise.all([
      get(`${URLS.quote}?symbols=${encodeURIComponent(ticker)}`),
      get(`${URLS.expirations}?ticker=${encodeURIComponent(ticker)}`),
    ]);
    if (seq !== state.seq) return;
    showQuote(quotes.quotes[0]);
    state.expiries = expiries.expirations;
    showExpiries(form);
  } catch (error) {
    if (seq !== state.seq) return;
    quoteBox.replaceChildren(el("span", { className: "error", role: "status" }, problem(error)));
  }
}

function showQuote(quote) {
  const change = fmt.direction(quote.change);
  $("oe-quote").replaceChildren(
    el("strong", { className: "oe-last" }, `${quote.symbol} ${fmt.price(quote.last)}`), " ",
    el("span", { className: `pnl pnl-${change}` }, `${fmt.signedPrice(quote.change)} (${fmt.percent(quote.change_pct)})`), " ",
    el("span", { className: "muted oe-age" }, `${age(quote.age_seconds, quote.delayed)} · ${quote.source}`));
}

function showExpiries(form) {
  const select = $("oe-expiry");
  select.replaceChildren(el("option", { value: "" }, "Pick an expiry"),
    ...state.expiries.map((row) => el("option", { value: row.date },
      `${weekday(row.date)} ${fmt.day(row.date)} · ${row.dte} DTE · ${row.kind}`)));
  select.disabled = false;
  const typed = form.elements.expiry.value;
  if (state.expiries.some((row) => row.date === typed)) {
    select.value = typed;
    loadChain(form);
  }
}

// --- the chain -----------------------------------------------------------------------------------

async function loadChain(form) {
  const expiry = $("oe-expiry").value;
  const ticker = state.ticker;
  const status = $("oe-chain-status");
  if (!expiry || !ticker) return;
  const seq = ++state.seq;
  status.textContent = "Loading the chain…";
  try {
    const chain = await get(`${URLS.chain}?ticker=${encodeURIComponent(ticker)}&expiry=${expiry}&strikes=${CHAIN_STRIKES}`);
    if (seq !== state.seq) return;
    showChain(form, chain);
    const oldest = Math.max(0, ...chain.strikes.flatMap((row) => [row.call?.age_seconds, row.put?.age_seconds]).filter(Number.isFinite));
    status.textContent = `${ticker} ${fmt.price(chain.underlying_price)} · ${fmt.day(expiry)} · quotes ${age(oldest, chain.delayed)} · ${chain.source}`;
  } catch (error) {
    if (seq !== state.seq) return;
    $("oe-chain").replaceChildren();
    status.textContent = problem(error);
  }
}

// A phone shows the bid and the ask (app.css hides the rest; the wide chain scrolls sideways); the "Calls"/"Puts" headers span what shows.
const NARROW = window.matchMedia("(max-width: 640px)");
const sideSpan = () => (NARROW.matches ? 2 : COLUMNS.length);
NARROW.addEventListener("change", () => {
  for (const th of document.querySelectorAll("#oe-chain th.oe-side")) th.colSpan = sideSpan();
});

const COLUMNS = [["bid", "Bid"], ["ask", "Ask"], ["mid", "Mid"], ["last", "Last"], ["volume", "Vol"], ["open_interest", "OI"], ["iv", "IV"], ["delta", "Δ"]];

function number(name, value) {
  if (value === null || value === undefined) return "—";
  if (name === "iv") return `${(Number(value) * 100).toFixed(1)}%`;
  if (name === "delta") return Number(value).toFixed(2);
  if (name === "volume" || name === "open_interest") return Number(value).toLocaleString("en-US");
  return fmt.price(value);
}

function cells(form, row, side, names) {
  const quote = row[side] || {};
  return names.map(([name]) => {
    if ((name === "bid" || name === "ask") && quote[name] !== null && quote[name] !== undefined) {
      const label = `${side === "call" ? "Call" : "Put"} ${Number(row.strike)} ${name} ${fmt.price(quote[name])}`;
      return el("td", { className: `num oe-${side}` }, el("button", {
        type: "button", className: `oe-pick oe-${name}`, "aria-label": `${label}: fill the form`,
        dataset: { side, name, strike: row.strike }, onclick: () => pick(form, row, side, name),
      }, fmt.price(quote[name])));
    }
    return el("td", { className: `num oe-${side} oe-col-${name}` }, number(name, quote[name]));
  });
}

function showChain(form, chain) {
  const spot = Number(chain.underlying_price);
  const reversed = [...COLUMNS].reverse();
  const head = el("thead", {},
    el("tr", {}, el("th", { colspan: sideSpan(), scope: "colgroup", className: "oe-side" }, "Calls"),
      el("th", { scope: "col", className: "num" }, "Strike"),
      el("th", { colspan: sideSpan(), scope: "colgroup", className: "oe-side" }, "Puts")),
    el("tr", {}, ...reversed.map(([name, label]) => el("th", { scope: "col", className: `num oe-col-${name}` }, label)),
      el("th", { scope: "col", className: "num" }, ""),
      ...COLUMNS.map(([name, label]) => el("th", { scope: "col", className: `num oe-col-${name}` }, label))));
  let marked = false;
  const rows = chain.strikes.map((row) => {
    const strike = Number(row.strike);
    const atm = !marked && strike >= spot;
    if (atm) marked = true;
    return el("tr", { className: `${strike < spot ? "oe-itm-call" : "oe-itm-put"}${atm ? " oe-atm" : ""}` },
      ...cells(form, row, "call", reversed),
      el("th", { scope: "row", className: "num oe-strike" }, String(strike)),
      ...cells(form, row, "put", COLUMNS));
  });
  $("oe-chain").replaceChildren(el("table", { className: "oe-chain-table" },
    el("caption", { className: "visually-hidden" }, `${chain.ticker || state.ticker} options expiring ${fmt.day(chain.expiry || $("oe-expiry").value)}`),
    head, el("tbody", {}, rows)));
}

function setField(form, name, value) {
  const control = form.elements.namedItem(name);
  control.value = value;
  control.dispatchEvent(new Event("input", { bubbles: true }));
  control.dispatchEvent(new Event("change", { bubbles: true }));
}

// A bid or an ask clicked: that contract, with a limit at that price.
function pick(form, row, side, name) {
  for (const button of document.querySelectorAll("#oe-chain .oe-pick[aria-pressed=true]")) button.setAttribute("aria-pressed", "false");
  document.querySelector(`#oe-chain .oe-pick[data-side="${side}"][data-name="${name}"][data-strike="${row.strike}"]`)?.setAttribute("aria-pressed", "true");
  setField(form, "ticker", state.ticker);
  setField(form, "expiry", $("oe-expiry").value);
  setField(form, "strike", String(Number(row.strike)));
  setField(form, "option_type", side === "call" ? "CALL" : "PUT");
  setField(form, "entry_type", "limit");
  setField(form, "limit_price", Number(row[side][name]).toFixed(2));
  $("oe-picked").textContent = `${state.ticker} ${fmt.day($("oe-expiry").value)} ${Number(row.strike)} ${side === "call" ? "call" : "put"}, limit ${fmt.price(row[side][name])} (the ${name}), Δ ${number("delta", row[side].delta)}, IV ${number("iv", row[side].iv)}`;
  form.elements.qty.focus();
}

// --- stop and target: a price or % of the entry --------------------------------------------------

const EXITS = { sl: { input: "nt-sl", price: "sl_price", pct: "sl_pct", label: "Stop-loss" },
  tp: { input: "nt-tp", price: "tp_price", pct: "tp_pct", label: "Take-profit" } };

function setExitUnit(form, key, unit) {
  const exit = EXITS[key];
  const input = $(exit.input);
  const name = unit === "pct" ? exit.pct : exit.price;
  if (input.name === name) return;
  input.name = name;
  const box = input.parentElement.querySelector("[data-error-for]");
  box.textContent = "";
  box.dataset.errorFor = name;
  input.removeAttribute("aria-invalid");
  input.step = "0.01";
  if (unit === "pct") {
    input.min = "0.01";
    input.max = key === "sl" ? "99.99" : "1000";
  } else {
    input.removeAttribute("max");
  }
  input.parentElement.querySelector("label").textContent = unit === "pct"
    ? `${exit.label} (% ${key === "sl" ? "below" : "above"} the entry)` : exit.label;
  $(`oe-${key}-unit`).value = unit;
}

function bindExits(form) {
  for (const key of Object.keys(EXITS)) {
    const input = $(EXITS[key].input);
    const unit = el("select", { id: `oe-${key}-unit`, className: "oe-unit", "aria-label": `${EXITS[key].label} as` },
      el("option", { value: "price" }, "$ price"), el("option", { value: "pct" }, "% of entry"));
    unit.addEventListener("change", () => {
      input.value = "";
      setExitUnit(form, key, unit.value);
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    input.after(unit);
  }
}

function presetFor(name) {
  return (config.strategy_presets || {})[(name || "").trim()] || null;
}

function describePreset(name, preset) {
  const parts = [];
  if (preset.sl_pct) parts.push(`stop ${preset.sl_pct}% below`);
  if (preset.tp_pct) parts.push(`target ${preset.tp_pct}% above`);
  return `Preset “${name}”: ${parts.join(", ")} the entry.`;
}

function applyPreset(form) {
  const name = form.elements.strategy.value.trim();
  const preset = presetFor(name);
  $("oe-preset").textContent = preset ? describePreset(name, preset) : "";
  if (!preset) return;
  for (const key of Object.keys(EXITS)) {
    const value = preset[EXITS[key].pct];
    const input = $(EXITS[key].input);
    if (!value || input.value) continue; // what the trader typed wins
    setExitUnit(form, key, "pct");
    input.value = value;
  }
}

function bindPresets(form) {
  const names = Object.keys(config.strategy_presets || {});
  if (!names.length) return;
  const list = el("datalist", { id: "oe-strategies" }, names.map((name) => el("option", { value: name })));
  form.append(list);
  form.elements.strategy.setAttribute("list", "oe-strategies");
  form.elements.strategy.addEventListener("change", () => applyPreset(form));
}

// --- the preview ---------------------------------------------------------------------------------

function item(label, value, extra) {
  return el("div", { className: "oe-item" }, el("dt", {}, label), el("dd", {}, el("span", { className: "nowrap" }, value), extra ? el("span", { className: "muted oe-extra" }, ` ${extra}`) : null));
}

function limitItems(limits) {
  const items = [];
  const positions = limits.max_positions;
  if (positions) items.push(item("Positions", `${positions.left} left`, `${positions.after} of ${positions.limit} after this`));
  const daily = limits.daily_loss_limit;
  if (daily) items.push(item("Daily loss room", fmt.money(daily.left).replace("+", ""), `${fmt.money(daily.used).replace("+", "")} of ${fmt.money(daily.limit).replace("+", "")} lost today`));
  const heat = limits.heat_limit_pct;
  if (heat) items.push(item("Heat room", fmt.money(heat.left).replace("+", ""), `${heat.after_pct}% of ${heat.limit_pct}% after this`));
  return items;
}

const plain = (value) => fmt.money(value).replace("+", "");

// The check's verdict as a label: a valid trade, or the risk limit it would break (a refusal on a
// limit still carries the preview, so the trader sees how little room is left).
const LIMIT_VERDICTS = { max_positions: "Over your position limit", daily_loss_limit: "Daily loss limit reached",
  heat_limit_pct: "Over your heat limit" };

function verdict(answer) {
  if (answer.valid) return { className: "oe-verdict oe-verdict-ok", text: "Passes every check" };
  const limit = (answer.errors || []).map((error) => LIMIT_VERDICTS[error.attr]).find(Boolean);
  return { className: "oe-verdict oe-verdict-refused", text: limit || "Refused" };
}

function showPreview(answer) {
  const box = $("oe-preview");
  const body = $("oe-preview-body");
  if (!answer?.preview) {
    box.classList.add("oe-stale");
    $("oe-preview-note").textContent = "The preview appears once the order is complete and passes the checks.";
    return;
  }
  const p = answer.preview;
  box.classList.remove("oe-stale");
  $("oe-preview-note").textContent = `${p.qty} × ${fmt.occLabel(p.option_symbol)} at ${fmt.price(p.entry_price)}, stop ${fmt.price(p.sl_price)}, target ${fmt.price(p.tp_price)}`;
  body.replaceChildren(
    el("p", { ...verdict(answer), role: "status" }),
    el("dl", { className: "oe-figures" },
      item("Debit", plain(p.debit)),
      item("Commission", plain(p.commission)),
      item("Total cost", plain(p.total_cost), `${p.balance_pct}% of balance`),
      item("Max loss", plain(p.max_loss), "1R, to the stop"),
      item("Reward", plain(p.reward), `${p.reward_r}R, to the target`),
      item("Breakeven", fmt.price(p.breakeven), "at expiry"),
      ...limitItems(p.limits || {})));
  const queued = $("oe-queued");
  queued.hidden = !answer.queued_for_open;
  queued.textContent = answer.queued_for_open
    ? `Market closed: queued for the open at ${openTime(answer.next_session_open)}.` : "";
}

function openTime(iso) {
  return iso ? fmt.dateTime(iso, { weekday: true }) : "the next session";
}

// --- wiring --------------------------------------------------------------------------------------

function resetAll(form) {
  state.ticker = "";
  state.seq += 1;
  for (const key of Object.keys(EXITS)) setExitUnit(form, key, "price");
  $("oe-quote").replaceChildren();
  $("oe-chain").replaceChildren();
  $("oe-chain-status").textContent = "";
  $("oe-picked").textContent = "";
  $("oe-preset").textContent = "";
  $("oe-expiry").replaceChildren(el("option", { value: "" }, "Type a ticker first"));
  $("oe-expiry").disabled = true;
  showPreview(null);
}

export function bindOrderEntry() {
  const form = $("new-trade");
  if (!form || !$("oe-chain")) return;
  bindExits(form);
  bindPresets(form);
  form.elements.ticker.addEventListener("input", () => {
    clearTimeout(state.timer);
    state.timer = setTimeout(() => loadTicker(form), TICKER_MS);
  });
  form.elements.ticker.addEventListener("change", () => {
    clearTimeout(state.timer);
    loadTicker(form);
  });
  $("oe-expiry").addEventListener("change", () => {
    if ($("oe-expiry").value) setField(form, "expiry", $("oe-expiry").value);
    loadChain(form);
  });
  form.elements.expiry.addEventListener("change", () => {
    const typed = form.elements.expiry.value;
    if (typed !== $("oe-expiry").value && state.expiries.some((row) => row.date === typed)) {
      $("oe-expiry").value = typed;
      loadChain(form);
    }
  });
  form.addEventListener("trade-checked", (event) => showPreview(event.detail));
  form.addEventListener("reset", () => setTimeout(() => resetAll(form)));
  resetAll(form);
}

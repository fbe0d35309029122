// The strategy builder: pick a template, click its strikes on the chain (the calls or the puts
// column; the template says which clicks are legs), see the legs, the payoff at expiry and today,
// and the figures POST /api/spreads/preview answers (cost or credit, max profit and loss,
// breakevens, buying power, net greeks); then Send posts the spread to POST /api/trades with its
// exits as held prices or as a share of the max profit (docs/spreads.md, the lifecycle contract).
// Every figure shown is the API's; this module only lays them out.

import { ApiError, config, get, newIdempotencyKey, post } from "./api.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";
import { busy, clearErrors, idle, showErrors } from "./forms.js";
import { renderPayoff } from "./payoff_chart.js";
import { refreshAll } from "./portfolio_state.js";
import { toast } from "./toast.js";

const URLS = { quote: "/api/market/quote", expirations: "/api/market/expirations", chain: "/api/market/chain",
  trades: "/api/trades", spread_preview: "/api/spreads/preview", ...config.urls };
const TICKER_MS = 350;
const PREVIEW_MS = 250;
const CHAIN_STRIKES = 8;

// How many strikes each template takes, and from which column: `one` = all from one column (the
// column picks calls or puts), `each` = so many from each column, `any` = from either.
const TEMPLATES = {
  vertical: { one: 2, hint: "Click two strikes in the calls or the puts column: the lower and the upper.", direction: true },
  straddle: { any: 1, hint: "Click the strike, in either column: a call and a put there.", direction: true },
  strangle: { each: { put: 1, call: 1 }, hint: "Click a put strike (puts column) below a call strike (calls column).", direction: true },
  iron_condor: { each: { put: 2, call: 2 }, hint: "Click two put strikes (bought below, sold above) and two call strikes (sold below, bought above)." },
  butterfly: { one: 3, hint: "Click three strikes in one column: a wing, the body (sold twice), the other wing." },
  calendar: { any: 1, hint: "Click the strike (its column picks the call or the put), and choose the back expiry.", back: true },
};

const state = { ticker: "", expiries: [], picks: [], preview: null, seq: 0, previewSeq: 0, tickerTimer: null, previewTimer: null };
const $ = (id) => document.getElementById(id);
const template = () => $("sb-template").value;
const rule = () => TEMPLATES[template()];
const credit = () => $("sb-direction").value === "credit";

function problem(error) {
  return error instanceof ApiError ? error.message : "The market data cannot be reached.";
}

// --- ticker, expiries, chain ---------------------------------------------------------------------

async function loadTicker(form) {
  const ticker = $("sb-ticker").value.trim().toUpperCase();
  if (ticker === state.ticker) return;
  state.ticker = ticker;
  state.picks = [];
  const seq = ++state.seq;
  $("sb-chain").replaceChildren();
  $("sb-expiry").disabled = true;
  $("sb-expiry").replaceChildren(el("option", { value: "" }, ticker ? `Looking up ${ticker}…` : "Type a ticker first"));
  showPreview(form, null);
  if (!ticker) return;
  try {
    const answer = await get(`${URLS.expirations}?ticker=${encodeURIComponent(ticker)}`);
    if (seq !== state.seq) return;
    state.expiries = answer.expirations;
    $("sb-expiry").replaceChildren(el("option", { value: "" }, "Pick an expiry"),
      ...state.expiries.map((row) => el("option", { value: row.date }, `${fmt.day(row.date)} · ${row.dte} DTE · ${row.kind}`)));
    $("sb-expiry").disabled = false;
    $("sb-chain-status").textContent = "";
  } catch (error) {
    if (seq !== state.seq) return;
    $("sb-chain-status").textContent = problem(error);
  }
}

function fillBackExpiries() {
  const front = $("sb-expiry").value;
  const select = $("sb-back-expiry");
  const kept = select.value;
  const later = state.expiries.filter((row) => row.date > front);
  select.replaceChildren(...later.map((row) => el("option", { value: row.date }, `${fmt.day(row.date)} · ${row.dte} DTE`)));
  const monthly = later.find((row) => row.kind === "monthly");
  select.value = later.some((row) => row.date === kept) ? kept : (monthly || later[0] || {}).date || "";
}

async function loadChain(form) {
  const expiry = $("sb-expiry").value;
  const ticker = state.ticker;
  fillBackExpiries();
  if (!expiry || !ticker) return;
  const seq = ++state.seq;
  $("sb-chain-status").textContent = "Loading the chain…";
  try {
    const chain = await get(`${URLS.chain}?ticker=${encodeURIComponent(ticker)}&expiry=${expiry}&strikes=${CHAIN_STRIKES}`);
    if (seq !== state.seq) return;
    showChain(form, chain);
    $("sb-chain-status").textContent = `${ticker} ${fmt.price(chain.underlying_price)} · ${fmt.day(expiry)} · ${chain.source}`;
    schedulePreview(form);
  } catch (error) {
    if (seq !== state.seq) return;
    $("sb-chain").replaceChildren();
    $("sb-chain-status").textContent = problem(error);
  }
}

function iv(quote) {
  return quote?.iv === null || quote?.iv === undefined ? "—" : `${(Number(quote.iv) * 100).toFixed(1)}%`;
}

function pickButton(form, row, side) {
  const quote = row[side];
  const strike = String(Number(row.strike));
  if (!quote) return el("td", { className: `num sb-${side}` }, "—");
  return el("td", { className: `num sb-${side}` }, el("button", {
    type: "button", className: "oe-pick sb-pick", dataset: { side, strike },
    "aria-pressed": String(isPicked(side, strike)),
    "aria-label": `${strike} ${side}, bid ${fmt.price(quote.bid)}, ask ${fmt.price(quote.ask)}: pick it as a leg`,
    onclick: () => pick(form, side, strike),
  }, `${fmt.price(quote.bid)} × ${fmt.price(quote.ask)}`));
}

function showChain(form, chain) {
  const spot = Number(chain.underlying_price);
  let marked = false;
  const rows = chain.strikes.map((row) => {
    const atm = !marked && Number(row.strike) >= spot;
    if (atm) marked = true;
    return el("tr", { className: atm ? "oe-atm" : null, dataset: { strike: String(Number(row.strike)) } },
      pickButton(form, row, "call"), el("td", { className: "num sb-iv" }, iv(row.call)),
      el("th", { scope: "row", className: "num oe-strike" }, String(Number(row.strike))),
      el("td", { className: "num sb-iv" }, iv(row.put)), pickButton(form, row, "put"));
  });
  $("sb-chain").replaceChildren(el("table", { className: "oe-chain-table sb-chain-table" },
    el("caption", { className: "visually-hidden" }, `${state.ticker} options expiring ${fmt.day($("sb-expiry").value)}: pick strikes`),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", className: "num" }, "Calls (bid × ask)"), el("th", { scope: "col", className: "num sb-iv" }, "IV"),
      el("th", { scope: "col", className: "num" }, "Strike"),
      el("th", { scope: "col", className: "num sb-iv" }, "IV"), el("th", { scope: "col", className: "num" }, "Puts (bid × ask)"))),
    el("tbody", {}, rows)));
}

// --- picks: the clicks that make the legs ----------------------------------------------------------

function isPicked(side, strike) {
  return state.picks.some((one) => one.side === side && one.strike === strike);
}

function pick(form, side, strike) {
  const wanted = rule();
  if (isPicked(side, strike)) {
    state.picks = state.picks.filter((one) => !(one.side === side && one.strike === strike));
  } else if (wanted.any) {
    state.picks = [{ side, strike }];
  } else if (wanted.one) {
    const same = state.picks.filter((one) => one.side === side); // the column decides calls or puts
    state.picks = [...same.slice(same.length - wanted.one + 1), { side, strike }];
  } else {
    const same = state.picks.filter((one) => one.side === side);
    const others = state.picks.filter((one) => one.side !== side);
    state.picks = [...others, ...same.slice(same.length - wanted.each[side] + 1), { side, strike }];
  }
  picksChanged(form);
}

function unpick(form, match) {
  state.picks = state.picks.filter((one) => !match(one));
  picksChanged(form);
}

function picksChanged(form) {
  for (const button of document.querySelectorAll("#sb-chain .sb-pick")) {
    button.setAttribute("aria-pressed", String(isPicked(button.dataset.side, button.dataset.strike)));
  }
  schedulePreview(form);
}

function complete() {
  const wanted = rule();
  const count = (side) => state.picks.filter((one) => one.side === side).length;
  if (wanted.any) return state.picks.length === 1;
  if (wanted.one) return state.picks.length === wanted.one;
  return count("put") === wanted.each.put && count("call") === wanted.each.call;
}

function remaining() {
  const wanted = rule();
  if (wanted.any || wanted.one) return (wanted.any || wanted.one) - state.picks.length;
  return ["put", "call"].reduce((sum, side) => sum + wanted.each[side] - state.picks.filter((one) => one.side === side).length, 0);
}

const byStrike = (picks) => [...picks].sort((a, b) => Number(a.strike) - Number(b.strike)).map((one) => one.strike);
const right = (side) => (side === "call" ? "CALL" : "PUT");

// The template's fields from the picks (the API checks their order and answers field by field).
function templateFields() {
  const picks = state.picks;
  const puts = byStrike(picks.filter((one) => one.side === "put"));
  const calls = byStrike(picks.filter((one) => one.side === "call"));
  const strikes = byStrike(picks);
  const expiry = $("sb-expiry").value;
  switch (template()) {
    case "vertical": return { option_type: right(picks[0].side), lower: strikes[0], upper: strikes[1], expiry, credit: credit() };
    case "straddle": return { strike: strikes[0], expiry, short: credit() };
    case "strangle": return { put_strike: puts[0], call_strike: calls[0], expiry, short: credit() };
    case "iron_condor": return { long_put: puts[0], short_put: puts[1], short_call: calls[0], long_call: calls[1], expiry };
    case "butterfly": return { option_type: right(picks[0].side), lower: strikes[0], middle: strikes[1], upper: strikes[2], expiry };
    default: return { option_type: right(picks[0].side), strike: strikes[0], front_expiry: expiry, back_expiry: $("sb-back-expiry").value };
  }
}

// --- the preview ---------------------------------------------------------------------------------

function schedulePreview(form) {
  clearTimeout(state.previewTimer);
  const wanted = rule();
  $("sb-direction-box").hidden = !wanted.direction;
  $("sb-back-box").hidden = !wanted.back;
  const left = remaining();
  $("sb-hint").textContent = left > 0 ? `${wanted.hint} ${left} more to click.` : wanted.hint;
  if (!complete() || !state.ticker || !$("sb-expiry").value) {
    state.previewSeq += 1;
    showPreview(form, null);
    return;
  }
  state.previewTimer = setTimeout(() => loadPreview(form), PREVIEW_MS);
}

export function previewBody() {
  return { ticker: state.ticker, strategy_type: template(), qty: Number($("sb-qty").value) || 1, ...templateFields() };
}

async function loadPreview(form) {
  const seq = ++state.previewSeq;
  clearErrors(form);
  try {
    const { data } = await post(URLS.spread_preview, previewBody());
    if (seq !== state.previewSeq) return;
    showPreview(form, data);
  } catch (error) {
    if (seq !== state.previewSeq) return;
    showPreview(form, null);
    showErrors(form, error);
  }
}

function item(key, label, value, extra = null) {
  return el("div", { className: "oe-item", dataset: { figure: key } },
    el("dt", {}, label), el("dd", {}, el("span", { className: "nowrap sb-value" }, value), extra ? el("span", { className: "muted oe-extra" }, extra) : null));
}

const dollars = (value) => (value === null ? "Unlimited" : fmt.money(value).replace("+", ""));

function figures(answer) {
  const isCredit = answer.net_direction === "credit";
  const greeks = answer.greeks;
  const items = [
    item("net", isCredit ? "Net credit" : "Net debit", fmt.price(answer.net_price), `per share · mid ${fmt.price(answer.net_mid === null ? null : Math.abs(Number(answer.net_mid)))}`),
    item("cost", isCredit ? "Credit received" : "Cost", dollars(String(Math.abs(Number(answer.cost)))), `${answer.qty} spread(s)`),
    item("max_profit", "Max profit", dollars(answer.max_profit), answer.modelled ? "modelled at the front expiry" : null),
    item("max_loss", "Max loss", dollars(answer.max_loss), answer.modelled ? "modelled at the front expiry" : null),
    item("breakevens", "Breakevens", answer.breakevens.length ? answer.breakevens.map(fmt.price).join(" · ") : "—", "at expiry"),
    item("buying_power", "Buying power", answer.buying_power === null ? "Not reserved" : dollars(answer.buying_power), answer.defined_risk ? "defined risk" : "not defined-risk"),
    item("width", "Width", fmt.price(answer.width)),
  ];
  if (greeks) {
    items.push(item("delta", "Delta", greeks.delta, "shares"), item("gamma", "Gamma", greeks.gamma, "per $1"),
      item("theta", "Theta", fmt.money(greeks.theta), "a day"), item("vega", "Vega", fmt.money(greeks.vega), "per vol point"));
  }
  return items;
}

const SIDE_WORDS = { LONG: "Buy", SHORT: "Sell" };

function legRow(form, leg) {
  const strike = String(Number(leg.strike));
  const side = leg.option_type === "CALL" ? "call" : "put";
  const at = leg.side === "LONG" ? "ask" : "bid";
  return el("li", { className: "sb-leg", dataset: { side: leg.side, ratio: String(leg.ratio), symbol: leg.option_symbol } },
    el("span", { className: `sb-leg-side sb-${leg.side.toLowerCase()}` }, `${SIDE_WORDS[leg.side]} ${leg.ratio}`), " ",
    el("span", {}, `${fmt.occLabel(leg.option_symbol)} at ${fmt.price(leg.price)} (the ${at})`), " ",
    el("span", { className: "muted" }, `IV ${leg.iv === null ? "—" : `${(leg.iv * 100).toFixed(1)}%`}`), " ",
    el("button", { type: "button", className: "secondary sb-remove", "aria-label": `Remove the ${strike} ${side}`,
      onclick: () => unpick(form, (one) => one.strike === strike && (one.side === side || rule().any)) }, "Remove"));
}

function pickRow(form, one) {
  return el("li", { className: "sb-leg sb-pending" }, `${one.strike} ${one.side} (picked) `,
    el("button", { type: "button", className: "secondary sb-remove", "aria-label": `Remove the ${one.strike} ${one.side}`,
      onclick: () => unpick(form, (other) => other === one) }, "Remove"));
}

function showPreview(form, answer) {
  state.preview = answer;
  $("sb-send").disabled = !answer;
  const legs = $("sb-legs");
  if (!answer) {
    legs.replaceChildren(...state.picks.map((one) => pickRow(form, one)));
    $("sb-figures").replaceChildren();
    $("sb-risk-note").textContent = "";
    $("sb-chart").replaceChildren();
    $("sb-chart").dataset.curves = "0";
    return;
  }
  legs.replaceChildren(...answer.legs.map((leg) => legRow(form, leg)));
  $("sb-figures").replaceChildren(...figures(answer));
  const note = $("sb-risk-note");
  note.textContent = [answer.risk_note, answer.today_modelled ? "" : "No implied volatility for a leg: no payoff today and no greeks."].filter(Boolean).join(" ");
  note.classList.toggle("error", answer.unlimited_loss || !answer.defined_risk);
  drawChart();
  const limit = $("sb-limit");
  if (!limit.value || limit.dataset.filled === limit.value) {
    limit.value = Number(answer.net_price).toFixed(2);
    limit.dataset.filled = limit.value;
  }
  showExits();
}

function drawChart() {
  const answer = state.preview;
  if (!answer) return;
  const drawn = renderPayoff($("sb-chart"), answer.payoff, { spot: answer.underlying_price, breakevens: answer.breakevens });
  $("sb-chart").dataset.curves = String(drawn);
}

// --- exits and Send ------------------------------------------------------------------------------

function showExits() {
  const share = $("sb-exit-mode").value === "share";
  const isCredit = state.preview ? state.preview.net_direction === "credit" : credit();
  $("sb-tp-box").hidden = share;
  $("sb-tp-pct-box").hidden = !share;
  $("sb-sl-box").hidden = share && isCredit;
  $("sb-multiple-box").hidden = !(share && isCredit);
  $("sb-exit-note").textContent = isCredit
    ? "A credit is held short: the target is below the credit (buy it back cheaper), the stop above."
    : "A debit is held long: the stop is below what you pay, the target above.";
}

const value = (id) => $(id).value.trim();

export function sendBody() {
  const answer = state.preview;
  const body = {
    ticker: answer.ticker, strategy_type: answer.strategy_type, qty: answer.qty,
    legs: answer.legs.map((leg) => ({ option_symbol: leg.option_symbol, side: leg.side, ratio: leg.ratio })),
    entry_type: $("sb-entry-type").value,
  };
  if (body.entry_type === "limit") body.limit_price = value("sb-limit");
  const share = $("sb-exit-mode").value === "share";
  const given = (name, id) => { if (value(id)) body[name] = value(id); };
  if (!share) {
    given("sl_price", "sb-sl");
    given("tp_price", "sb-tp");
  } else {
    given("take_profit_pct_of_max", "sb-tp-pct");
    if (answer.net_direction === "credit") given("stop_loss_credit_multiple", "sb-multiple");
    else given("sl_price", "sb-sl");
  }
  return body;
}

async function send(form) {
  if (!state.preview) return;
  clearErrors(form);
  $("sb-sent").textContent = "";
  const button = $("sb-send");
  form.dataset.key ||= newIdempotencyKey();
  busy(button, "Sending…");
  try {
    const { data } = await post(URLS.trades, sendBody(), { headers: { "Idempotency-Key": form.dataset.key } });
    delete form.dataset.key;
    $("sb-sent").textContent = `Sent: trade #${data.id}, ${String(data.status || "").toLowerCase()}.`;
    toast(`${state.preview.ticker} ${template().replace("_", " ")} sent.`, "success");
    refreshAll();
  } catch (error) {
    if (error instanceof ApiError && error.status < 500) delete form.dataset.key; // refused: a changed order is a new one
    showErrors(form, error);
  } finally {
    idle(button);
    button.disabled = !state.preview;
  }
}

// --- wiring --------------------------------------------------------------------------------------

export function bindStrategyBuilder() {
  const form = $("sb-form");
  if (!form) return;
  $("sb-ticker").addEventListener("input", () => {
    clearTimeout(state.tickerTimer);
    state.tickerTimer = setTimeout(() => loadTicker(form), TICKER_MS);
  });
  $("sb-ticker").addEventListener("change", () => {
    clearTimeout(state.tickerTimer);
    loadTicker(form);
  });
  $("sb-expiry").addEventListener("change", () => loadChain(form));
  $("sb-template").addEventListener("change", () => {
    state.picks = [];
    picksChanged(form);
  });
  for (const id of ["sb-direction", "sb-qty", "sb-back-expiry"]) $(id).addEventListener("change", () => schedulePreview(form));
  $("sb-qty").addEventListener("input", () => schedulePreview(form));
  $("sb-exit-mode").addEventListener("change", showExits);
  $("sb-entry-type").addEventListener("change", () => { $("sb-limit").disabled = $("sb-entry-type").value !== "limit"; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(form);
  });
  new ResizeObserver(() => drawChart()).observe($("sb-chart"));
  schedulePreview(form);
  showExits();
}

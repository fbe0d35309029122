// The top bar: market status (open / closed / early close / FORCE OPEN), data source and the
// freshness of the latest mark (by the server's clock), the mute toggle, and the broker-trouble banners.

import { config, get } from "./api.js";
import { duration } from "./format.js";
import { bindMuteToggle } from "./sound.js";

const ET = { timeZone: "America/New_York" };
let market = null;
let latestMark = null;
// The server's clock minus the browser's, in ms (null until /market-status answered): a mark's age
// is the server's "now" minus the server's time of the mark, right even when the two clocks differ.
let serverOffset = null;

function etTime(iso) {
  return new Date(iso).toLocaleTimeString("en-US", { ...ET, hour: "2-digit", minute: "2-digit" });
}

function etDay(iso) {
  return new Date(iso).toLocaleDateString("en-US", { ...ET, weekday: "short" });
}

function renderMarket() {
  const element = document.getElementById("market-status");
  if (!element || !market) return;
  element.classList.remove("warn", "good", "bad");
  if (market.forced) {
    element.textContent = "Market: FORCE OPEN (not the real clock)";
    element.classList.add("warn");
  } else if (market.open) {
    const early = market.early_close ? "early close today, " : "";
    element.textContent = `Market: open · ${early}closes ${etTime(market.next_close)} ET`;
    element.classList.add(market.early_close ? "warn" : "good");
  } else {
    element.textContent = `Market: closed · opens ${etDay(market.next_open)} ${etTime(market.next_open)} ET`;
    element.classList.add("bad");
  }
}

function renderFreshness() {
  const element = document.getElementById("data-freshness");
  if (!element) return;
  const source = market?.data_source ? `Data: ${market.data_source}` : "Data";
  if (!latestMark) {
    element.textContent = `${source} · no marks yet`;
    return;
  }
  if (serverOffset === null) return; // the server's time is on its way
  const age = Math.max(0, Date.now() + serverOffset - Date.parse(latestMark));
  const stale = market?.open && age > 5 * 60000;
  const ago = age < 60000 ? "just now" : `${duration(age)} ago`;
  element.textContent = `${source} · last mark ${ago}${stale ? " (stale)" : ""}`;
  element.classList.toggle("warn", Boolean(stale));
}

export function setLatestMark(iso) {
  latestMark = iso;
  renderFreshness();
}

// Also on every refresh of the page (refresh.js): rows that say "closed" beside a top bar still saying "open" would lie.
export async function loadMarket() {
  try {
    const sent = Date.now();
    market = await get(config.urls.market_status);
    serverOffset = Date.parse(market.at) - (sent + Date.now()) / 2;
  } catch {
    market = null;
    serverOffset ??= 0; // no server time: the browser's clock is the best left
    const element = document.getElementById("market-status");
    if (element) element.textContent = "Market: status unavailable";
  }
  renderMarket();
  renderFreshness();
}

const BANNER_TEXT = {
  broker_reauthenticate: "Re-authenticate your broker token: the broker refused it or none is stored. ",
  broker_forbidden: "Tradier does not allow this account to trade; new trades are refused until it is fixed. ",
  broker_unavailable: "The broker is unavailable right now; orders cannot be placed or changed. ",
};

// Codes of the monitor's banners the trader dismissed: not shown again until that trouble is over.
const dismissed = new Set();

function showBanner({ code, detail }, { source = "request" } = {}) {
  const region = document.getElementById("banners");
  if (!region || region.querySelector(`[data-code="${code}"]`)) return;
  const banner = document.createElement("div");
  banner.className = "banner banner-error";
  banner.setAttribute("role", "alert");
  banner.dataset.code = code;
  banner.dataset.source = source;
  const text = document.createElement("span");
  text.textContent = BANNER_TEXT[code] || BANNER_TEXT.broker_unavailable;
  const more = document.createElement("span");
  more.className = "muted";
  more.textContent = detail ? `(${detail}) ` : "";
  const link = document.createElement("a");
  link.href = config.urls.settings_page;
  link.textContent = "Open settings";
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "icon-button";
  dismiss.textContent = "Dismiss";
  dismiss.addEventListener("click", () => {
    if (source === "monitor") dismissed.add(code);
    banner.remove();
  });
  banner.append(text, more, link, dismiss);
  region.append(banner);
}

// Broker trouble the order cycle met (a refused token, an outage) reaches the page without a
// request of the trader's failing; a banner goes once the monitor reads the account cleanly.
async function loadBrokerStatus() {
  if (!config.urls?.broker_status) return;
  let troubles;
  try {
    troubles = await get(config.urls.broker_status);
  } catch {
    return; // the page's own requests say what is wrong with the server
  }
  const codes = new Set(troubles.map((trouble) => trouble.code));
  for (const banner of document.querySelectorAll('#banners [data-source="monitor"]')) {
    if (!codes.has(banner.dataset.code)) banner.remove();
  }
  for (const code of [...dismissed]) if (!codes.has(code)) dismissed.delete(code);
  for (const trouble of troubles) {
    if (!dismissed.has(trouble.code)) showBanner(trouble, { source: "monitor" });
  }
}

export function startTopbar() {
  bindMuteToggle(document.getElementById("mute-toggle"));
  window.addEventListener("broker-trouble", (event) => showBanner(event.detail));
  loadMarket();
  loadBrokerStatus();
  setInterval(() => {
    if (document.hidden) return;
    loadMarket();
    loadBrokerStatus();
  }, 60000);
  setInterval(renderFreshness, 15000);
}

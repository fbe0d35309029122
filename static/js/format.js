// Display only: every figure arrives from the API as a string; these functions only lay it out.

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MINUS = "\u2212";

function trimNumber(text) {
  return String(text).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

// Dates read one way only, month in words and the year in full: "Dec 18, 2026" (never "18 Dec 26",
// "12/18/26" nor "2026-12-18"); a moment adds New York's time, "Dec 18, 2026 15:59 ET".

// A calendar date ("2026-12-18", as the API writes an expiry) → "Dec 18, 2026".
export function day(iso) {
  if (!iso) return "—";
  const [year, month, date] = String(iso).slice(0, 10).split("-").map(Number);
  return `${MONTHS[month - 1]} ${date}, ${year}`;
}

const NEW_YORK = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", weekday: "short", year: "numeric",
  month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

// A moment (an ISO date-time) → "Dec 18, 2026 15:59 ET", in New York whatever the browser's zone;
// with `weekday`, "Fri Dec 18, 2026 15:59 ET".
export function dateTime(iso, { weekday = false } = {}) {
  if (!iso) return "—";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "—";
  const part = Object.fromEntries(NEW_YORK.formatToParts(at).map(({ type, value }) => [type, value]));
  const date = `${MONTHS[Number(part.month) - 1]} ${Number(part.day)}, ${part.year} ${part.hour}:${part.minute} ET`;
  return weekday ? `${part.weekday} ${date}` : date;
}

// "SPY Jan 16, 2026 570 C". In a narrow cell it may break before the date and before the strike,
// never inside them (no-break spaces there).
export function contractLabel(trade) {
  const type = trade.option_type === "PUT" ? "P" : "C";
  return `${trade.ticker} ${day(trade.expiry).replaceAll(" ", "\u00a0")} ${trimNumber(trade.strike)}\u00a0${type}`;
}

// A code as a label: "strong_buy" or "STRONG_BUY" → "Strong buy" (scanner verdicts, error codes).
export function words(code) {
  if (code === null || code === undefined || code === "") return "";
  const text = String(code).replaceAll("_", " ").trim();
  const spaced = text === text.toUpperCase() ? text.toLowerCase() : text;
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

// "SPY261218C00445000" → "SPY Dec 18, 2026 445 call"
export function occLabel(symbol) {
  const match = /^([A-Z.]+)(\d{2})(\d{2})(\d{2})([CP])(\d{8})$/.exec(symbol || "");
  if (!match) return symbol;
  const [, root, yy, mm, dd, type, strike] = match;
  return `${root} ${day(`20${yy}-${mm}-${dd}`)} ${Number(strike) / 1000} ${type === "C" ? "call" : "put"}`;
}

// "SPY 570C", for sentences.
export function shortLabel(trade) {
  return `${trade.ticker} ${trimNumber(trade.strike)}${trade.option_type === "PUT" ? "P" : "C"}`;
}

export function price(value) {
  if (value === null || value === undefined || value === "") return "—";
  return Number(value).toFixed(2);
}

function signed(value, body) {
  const number = Number(value);
  if (number > 0) return `+${body}`;
  if (number < 0) return `${MINUS}${body}`;
  return body;
}

export function money(value) {
  if (value === null || value === undefined) return "—";
  const number = Math.abs(Number(value));
  return signed(value, `$${number.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`);
}

export function percent(value) {
  if (value === null || value === undefined) return "—";
  return signed(value, `${Math.abs(Number(value)).toFixed(2)}%`);
}

export function signedPrice(value) {
  if (value === null || value === undefined) return "—";
  return signed(value, Math.abs(Number(value)).toFixed(2));
}

// "gain" / "loss" / "flat": colour is never the only signal.
export function direction(value) {
  if (value === null || value === undefined) return "none";
  const number = Number(value);
  return number > 0 ? "gain" : number < 0 ? "loss" : "flat";
}

export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const minutes = Math.floor(ms / 60000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days) return `${days}d ${hours}h`;
  if (hours) return `${hours}h ${minutes % 60}m`;
  return `${minutes}m`;
}

export function since(iso, now = Date.now()) {
  return iso ? duration(now - Date.parse(iso)) : "—";
}

export function hours(value) {
  if (value === null || value === undefined) return "—";
  return duration(Number(value) * 3600000);
}

export function clock(date) {
  return date.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}


export const CLOSE_REASONS = {
  TP_HIT: "TP hit",
  SL_HIT: "SL hit",
  MANUAL_CLOSE: "Manual close",
  EXPIRED: "Expired",
  EXPIRED_ITM: "Expired ITM",
  TIME_STOP: "Time stop",
  STOCK_STOP: "Stock stop",
};

// A rate from 0 to 1 as "35.7 %" (a non-breaking space before the sign, so it never wraps alone).
export function rate(value, places = 1) {
  if (value === null || value === undefined) return "—";
  return `${(Number(value) * 100).toFixed(places)}\u00a0%`;
}

// A plain ratio ("2.40"); "—" when undefined.
export function ratio(value, places = 2) {
  if (value === null || value === undefined) return "—";
  return Number(value).toFixed(places);
}

// An R multiple with its sign: "+0.53 R".
export function rMultiple(value) {
  if (value === null || value === undefined) return "—";
  return `${signed(value, Math.abs(Number(value)).toFixed(2))}\u00a0R`;
}


// Display only: every figure arrives from the API as a string; these functions only lay it out.

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MINUS = "\u2212";

function trimNumber(text) {
  return String(text).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

// "SPY 16 Jan 26 570 C"
export function contractLabel(trade) {
  const [year, month, day] = trade.expiry.split("-");
  const type = trade.option_type === "PUT" ? "P" : "C";
  return `${trade.ticker} ${Number(day)} ${MONTHS[Number(month) - 1]} ${year.slice(2)} ${trimNumber(trade.strike)} ${type}`;
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

export function dateTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString("en-GB", { day: "numeric", month: "short", year: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export const CLOSE_REASONS = {
  TP_HIT: "TP hit",
  SL_HIT: "SL hit",
  MANUAL_CLOSE: "Manual close",
  EXPIRED: "Expired",
  EXPIRED_ITM: "Expired ITM",
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

// A New York date ("2026-12-04") as "Fri 4 Dec 2026", without moving it through a time zone.
export function day(iso) {
  if (!iso) return "—";
  const [year, month, date] = iso.split("-").map(Number);
  const weekday = new Date(Date.UTC(year, month - 1, date)).toLocaleDateString("en-GB", { weekday: "short", timeZone: "UTC" });
  return `${weekday} ${date} ${MONTHS[month - 1]} ${year}`;
}

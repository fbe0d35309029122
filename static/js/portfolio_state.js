// What the portfolio page's modules share: the trades as last listed, which rows are expanded, and
// one way to ask for a refresh (the entry point registers it), so no module imports its caller.

import { ApiError } from "./api.js";
import { toast } from "./toast.js";

export const state = {
  trades: new Map(), // id → the trade as last listed
  known: null, // ids active at the previous poll (null before the first)
  expanded: new Set(),
  details: new Map(), // id → its detail <tr>, kept across re-renders
  charts: new Map(),
  closedHere: new Set(), // closes (and entry cancels) this page made: announced once, by the page itself
  historyLoaded: false,
};

let refresher = async () => {};

export function setRefresher(fn) {
  refresher = fn;
}

// Everything on the page again from the API (one refresh at a time; a second call joins it).
export const refreshAll = () => refresher();

// --- the 409 flow --------------------------------------------------------------------------------

const CONFLICT_CODES = new Set(["version_conflict", "invalid_state"]);

export function isConflict(error) {
  return error instanceof ApiError && error.status === 409 && CONFLICT_CODES.has(error.code);
}

export function conflict() {
  toast("This trade was updated on another device", "warning");
  setTimeout(() => refreshAll(), 1000);
}

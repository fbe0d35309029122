// Refreshing the page: everything shown comes again from the API, on the button, after an action,
// and every few seconds while auto-refresh is on and the tab is visible (polling pauses while hidden).

import { loadAccountSummary } from "./account_summary.js";
import { config, put } from "./api.js";
import * as fmt from "./format.js";
import { loadHistory } from "./history.js";
import { loadPerformance } from "./performance_tab.js";
import { loadPositions } from "./positions.js";
import { state } from "./portfolio_state.js";
import { visibleTab } from "./tabs.js";
import { toast } from "./toast.js";
import { loadMarket } from "./topbar.js";

const REFRESH_MS = (config.refresh_seconds || 15) * 1000;
const polling = { timer: null, lastRefresh: 0, refreshing: null };

export async function refreshAll() {
  if (polling.refreshing) return polling.refreshing;
  const stamp = document.getElementById("last-updated");
  polling.refreshing = (async () => {
    try {
      const tab = visibleTab();
      await Promise.all([
        loadPositions(),
        loadAccountSummary(),
        loadMarket(),
        tab === "history" || state.historyLoaded ? loadHistory() : null,
        tab === "performance" ? loadPerformance() : null,
      ]);
      polling.lastRefresh = Date.now();
      stamp.textContent = `Last updated ${fmt.clock(new Date())}`;
      stamp.classList.remove("error");
    } catch (error) {
      stamp.textContent = `Update failed at ${fmt.clock(new Date())}: ${error.message}`;
      stamp.classList.add("error");
    } finally {
      polling.refreshing = null;
      schedule();
    }
  })();
  return polling.refreshing;
}

function autoRefreshOn() {
  return document.getElementById("auto-refresh").checked;
}

function schedule() {
  clearTimeout(polling.timer);
  polling.timer = null;
  if (autoRefreshOn() && !document.hidden) polling.timer = setTimeout(refreshAll, REFRESH_MS);
}

export function bindRefresh() {
  document.getElementById("refresh-all").addEventListener("click", () => refreshAll());
  const toggle = document.getElementById("auto-refresh");
  toggle.addEventListener("change", async () => {
    const wanted = toggle.checked;
    schedule();
    try {
      await put(config.urls.settings, { auto_refresh: wanted });
      toast(`Auto-refresh ${wanted ? "on" : "off"} (saved)`, "info");
    } catch (error) {
      toggle.checked = !wanted;
      schedule();
      toast(`Could not save auto-refresh: ${error.message}`, "error");
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(polling.timer); // paused while nobody looks
      polling.timer = null;
    } else if (autoRefreshOn()) {
      if (Date.now() - polling.lastRefresh >= REFRESH_MS) refreshAll();
      else schedule();
    }
  });
}

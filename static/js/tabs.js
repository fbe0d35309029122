// The page's tabs (open positions, history, performance): arrow keys move between them, the URL's
// hash remembers the one shown, and a tab's data loads when it is shown.

import { loadHistory } from "./history.js";
import { loadPerformance } from "./performance_tab.js";

const tabs = [...document.querySelectorAll("[role=tab]")];

function selectTab(tab, { focus = false } = {}) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  const name = tab.id.replace("tab-", "");
  history.replaceState(null, "", name === "open" ? location.pathname : `#${name}`);
  if (name === "history") loadHistory();
  if (name === "performance") loadPerformance();
}

export function bindTabs() {
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
      if (event.key in moves) {
        event.preventDefault();
        selectTab(tabs[(moves[event.key] + tabs.length) % tabs.length], { focus: true });
      }
    });
  });
  const initial = tabs.find((tab) => `#${tab.id.replace("tab-", "")}` === location.hash);
  if (initial) selectTab(initial);
}

export const visibleTab = () => tabs.find((tab) => tab.getAttribute("aria-selected") === "true").id.replace("tab-", "");

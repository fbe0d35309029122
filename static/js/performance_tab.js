// The performance tab: the period picked (today, week, month, year to date, all, a custom range)
// and the basis (net of commissions and fees, or gross: premiums only) are asked of the analytics
// API, whose answer names the New York dates it covered; calibration is asked for the same dates
// and basis, the exit replay (its SL/TP grid premiums only by design, its exit policies net of commissions)
// for the same dates. The basis lives in the
// period's form, so a refresh or another period keeps it. performance.js lays the answers out; its charts are
// removed before new ones are drawn. A bad custom range is told beside its field, in words.

import { config, get } from "./api.js";
import { el } from "./dom.js";
import { renderPerformance } from "./performance.js";
import { renderPolicyReplay } from "./performance_calibration.js";

let charts = [];
let drawn = ""; // the answers last drawn: a refresh that brings the same ones leaves the page as it is
let drawnPolicies = ""; // the exit policies' answer last drawn into those cards
let bringIntoView = false; // the tab was just picked on a phone: its cards go to the top of the screen
const form = document.getElementById("performance-period");
const PHONE = window.matchMedia("(max-width: 640px)");

function query() {
  const data = new FormData(form);
  const params = new URLSearchParams({ period: data.get("period") || "all", basis: data.get("basis") || "net" });
  if (params.get("period") === "custom") {
    for (const name of ["start", "end"]) if (data.get(name)) params.set(name, data.get(name));
  }
  return params;
}

function showErrors(fields = {}) {
  for (const name of ["start", "end", "period", "basis"]) {
    const box = document.getElementById(`performance-${name}-error`);
    box.textContent = (fields[name] || []).join(" ");
    form.elements[name]?.setAttribute?.("aria-invalid", String(Boolean(fields[name])));
  }
}

export async function loadPerformance() {
  const box = document.getElementById("performance");
  const params = query();
  try {
    const performance = await get(`${config.urls.performance}?${params}`);
    const { start, end } = performance.period;
    const dates = new URLSearchParams(Object.entries({ from: start, to: end }).filter(([, value]) => value));
    const onBasis = new URLSearchParams([...dates, ["basis", params.get("basis")]]);
    const onDates = dates.size ? `?${dates}` : "";
    // The exit policies take longer (the engine walks every recorded mark): asked now, drawn when they come.
    const policies = get(config.urls.exit_policy_replay + onDates);
    policies.catch(() => {}); // a refusal is told by the awaits below, or not at all when the rest failed
    const [calibration, replay] = await Promise.all([
      get(`${config.urls.calibration}?${onBasis}`), get(config.urls.exit_replay + onDates)]);
    showErrors();
    const answers = JSON.stringify([performance, calibration, replay]);
    if (answers !== drawn || !charts.length) {
      drawn = answers;
      drawnPolicies = "";
      for (const chart of charts) chart?.remove();
      charts = renderPerformance(box, performance, calibration, replay);
    }
    const policyAnswer = await policies;
    const policyText = JSON.stringify(policyAnswer);
    const section = box.querySelector("[data-metric=exit_replay]");
    if (section && policyText !== drawnPolicies) {
      drawnPolicies = policyText;
      renderPolicyReplay(section, policyAnswer);
    }
    if (bringIntoView) document.getElementById("panel-performance").scrollIntoView({ block: "start" });
    bringIntoView = false;
  } catch (error) {
    if (error.status === 400) showErrors(error.fieldErrors());
    else {
      drawn = "";
      box.replaceChildren(el("p", { className: "error", text: error.message }));
    }
  }
}

// On a phone the account card and the page head fill the first screen: picking the tab scrolls
// its panel (period, then the KPI cards) to the top once the figures are in.
function bindTabPick() {
  document.getElementById("tab-performance")?.addEventListener("click", () => {
    bringIntoView = PHONE.matches;
  });
}

function bindPeriod() {
  const custom = document.getElementById("performance-custom");
  form.addEventListener("change", (event) => {
    if (event.target.name === "basis") {
      loadPerformance();
      return;
    }
    if (event.target.name !== "period") return;
    custom.hidden = event.target.value !== "custom";
    if (event.target.value !== "custom") loadPerformance();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadPerformance();
  });
}

if (form) {
  bindPeriod();
  bindTabPick();
}

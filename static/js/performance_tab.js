// The performance tab: the analytics API's metrics, calibration and exit replay, laid out by
// performance.js; its charts are removed before new ones are drawn.

import { config, get } from "./api.js";
import { el } from "./dom.js";
import { renderPerformance } from "./performance.js";

let charts = [];

export async function loadPerformance() {
  const box = document.getElementById("performance");
  try {
    const [performance, calibration, replay] = await Promise.all(
      [config.urls.performance, config.urls.calibration, config.urls.exit_replay].map((url) => get(url)));
    for (const chart of charts) chart?.remove();
    charts = renderPerformance(box, performance, calibration, replay);
  } catch (error) {
    if (error.status === 404) {
      box.replaceChildren(
        el("p", { className: "coming", text: "Performance metrics are coming." }),
        el("p", { className: "muted", text: "Win rate, expectancy, drawdown and the equity curve will appear here once the analytics API is live. No numbers are shown until then." }));
    } else {
      box.replaceChildren(el("p", { className: "error", text: error.message }));
    }
  }
}

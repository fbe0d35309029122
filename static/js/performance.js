// The Performance tab, laid out as a dashboard: the period shown, the KPI cards on top, then the
// equity curve (with its drawdown), daily P&L and the distribution of results, the breakdowns as
// sortable tables, calibration and the exit replay. Every number comes from the analytics API;
// the pieces live in performance_cards.js, performance_charts.js, performance_tables.js and
// performance_calibration.js.

import { el } from "./dom.js";
import * as fmt from "./format.js";
import { renderCards } from "./performance_cards.js";
import { renderCalibration, renderReplay } from "./performance_calibration.js";
import { renderDaily, renderDistribution, renderEquityBlock } from "./performance_charts.js";
import { renderBreakdowns } from "./performance_tables.js";

function block(name, title, ...children) {
  return el("section", { className: "metric-block", dataset: { metric: name } }, el("h2", { className: "titled", text: title }), ...children);
}

function periodDates(period) {
  if (!period.start && !period.end) return "every closed trade";
  if (!period.end) return `since ${fmt.day(period.start)}`;
  if (!period.start) return `up to ${fmt.day(period.end)}`;
  return period.start === period.end ? fmt.day(period.start) : `${fmt.day(period.start)} to ${fmt.day(period.end)}`;
}

const BASIS_WORDS = { net: "net of commissions and fees", gross: "gross: premiums only, before commissions and fees" };

function periodLine(period, summary, basis) {
  const dates = periodDates(period);
  return el("p", { className: "muted period-shown", dataset: { period: period.name, basis } },
    el("strong", { text: period.label }), ` · ${dates} (New York dates) · ${summary.trades} closed trade${summary.trades === 1 ? "" : "s"}`,
    BASIS_WORDS[basis] ? ` · ${BASIS_WORDS[basis]}` : "");
}

// Draws the three answers into `box`; returns the charts made, for the caller to remove later.
export function renderPerformance(box, performance, calibration, replay) {
  const charts = [];
  const equity = block("equity_curve", "Equity and drawdown");
  renderEquityBlock(equity, performance.equity_curve, charts);
  const daily = block("daily", "Daily P&L");
  renderDaily(daily, performance.daily, charts);
  const distribution = block("pnl_distribution", "Distribution of results");
  renderDistribution(distribution, performance.pnl_distribution, charts);
  const breakdowns = block("breakdowns", "Breakdowns", renderBreakdowns(performance));
  const calibrationBlock = block("calibration", "Calibration: does a higher score mean a better trade?");
  renderCalibration(calibrationBlock, calibration, charts);
  const replayBlock = block("exit_replay", "Exit replay (hindsight): other SL/TP brackets and exit policies on the recorded paths");
  renderReplay(replayBlock, replay);
  box.replaceChildren(periodLine(performance.period, performance.summary, performance.basis), renderCards(performance),
    el("div", { className: "chart-row" }, equity, daily, distribution), breakdowns, calibrationBlock, replayBlock,
    el("p", { className: "chart-credit muted" }, el("a", { href: "https://www.tradingview.com/", rel: "noopener", text: "Charts by TradingView Lightweight Charts™" })));
  return charts;
}

// The Performance tab: the equity curve, daily P&L and the P&L distribution as charts, the
// calibration curves of each scanner score, the exit-replay heat map per strategy (hindsight),
// then every other figure of GET /api/analytics/performance as tables. Every number comes from
// the analytics API; this file lays it out and picks colours, nothing more.

import { createChart } from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { renderEquity } from "./chart.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";

const GAIN = "#4ade80";
const LOSS = "#f87171";
const LINE = "#60a5fa";
const DAY = 86400;
const TABLE_ROWS = 25;
const DRAWN = new Set(["equity_curve", "pnl_distribution", "daily", "money"]);
const SCORE_NAMES = { card_score: "Card score", ai_score: "AI score", technical_score: "Technical score", sentiment_score: "Sentiment score" };

const words = (name) => name.replaceAll("_", " ");
const dollars = (value) => `$${Number(value).toFixed(2)}`;
const pct = (value) => (value === null || value === undefined ? "—" : `${(Number(value) * 100).toFixed(0)}%`);

function scalar(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

// An answer laid out as it comes: objects of figures as definition lists, lists of rows as tables.
function describe(value) {
  if (Array.isArray(value)) {
    if (!value.length) return el("p", { className: "muted", text: "None yet." });
    if (typeof value[0] !== "object" || value[0] === null) return value.map(scalar).join(", ");
    const columns = Object.keys(value[0]);
    const table = el("table", { className: "metrics-table" },
      el("thead", {}, el("tr", {}, columns.map((name) => el("th", { scope: "col", text: words(name) })))),
      el("tbody", {}, value.slice(0, TABLE_ROWS).map((row) => el("tr", {}, columns.map((name) =>
        el("td", {}, typeof row[name] === "object" && row[name] !== null ? JSON.stringify(row[name]) : scalar(row[name])))))));
    const more = value.length > TABLE_ROWS ? el("p", { className: "muted", text: `… and ${value.length - TABLE_ROWS} more rows.` }) : null;
    return el("div", { className: "table-scroll" }, table, more);
  }
  if (value !== null && typeof value === "object") {
    return el("dl", { className: "metrics" }, Object.entries(value).map(([name, inner]) =>
      [el("dt", { text: words(name) }), el("dd", {}, typeof inner === "object" && inner !== null ? describe(inner) : scalar(inner))]));
  }
  return scalar(value);
}

// --- charts ----------------------------------------------------------------------------------------

const BASE = {
  autoSize: true,
  layout: { background: { color: "#0f1720" }, textColor: "#cbd5e1", attributionLogo: false },
  grid: { vertLines: { color: "#1e293b" }, horzLines: { color: "#1e293b" } },
  rightPriceScale: { borderColor: "#334155" },
  timeScale: { borderColor: "#334155" },
  handleScroll: false,
  handleScale: false,
};

function canvas(label, className = "chart-canvas") {
  return el("div", { className, role: "img", "aria-label": label });
}

// Lightweight Charts only knows a time axis: categories (buckets, deciles) sit one "day" apart
// and every label the axis or the crosshair shows is the category's own.
function categoryChart(box, labels, options = {}) {
  const name = (time) => labels[Math.round(time / DAY) - 1] ?? "";
  return createChart(box, {
    ...BASE, ...options,
    timeScale: { ...BASE.timeScale, tickMarkFormatter: name, fixLeftEdge: true, fixRightEdge: true },
    localization: { timeFormatter: name },
  });
}

const at = (index) => (index + 1) * DAY;

function dataTable(summary, columns, rows) {
  return el("details", { className: "chart-data" }, el("summary", { text: summary }),
    el("div", { className: "table-scroll" }, el("table", { className: "metrics-table" },
      el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", { scope: "col", text: title })))),
      el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([, value]) => el("td", { text: value(row) }))))))));
}

function renderDistribution(block, distribution, charts) {
  const buckets = distribution.buckets || [];
  if (!buckets.length) {
    block.append(el("p", { className: "muted", text: "No closed trades yet." }));
    return;
  }
  const total = buckets.reduce((sum, bucket) => sum + bucket.trades, 0);
  const box = canvas(`Histogram of ${total} closed trades by realized P&L, in buckets of ${dollars(distribution.bucket_width)} from ${fmt.money(buckets[0].from)} to ${fmt.money(buckets[buckets.length - 1].to)}.`);
  block.append(box, el("p", { className: "muted chart-caption", text: `Trades per realized-P&L bucket of ${dollars(distribution.bucket_width)}; green buckets are wins, red ones losses.` }),
    dataTable("P&L distribution as a table", [["From", (b) => fmt.money(b.from)], ["To", (b) => fmt.money(b.to)], ["Trades", (b) => String(b.trades)], ["Wins", (b) => String(b.wins)]], buckets));
  requestAnimationFrame(() => {
    const chart = categoryChart(box, buckets.map((bucket) => `${fmt.money(bucket.from)} to ${fmt.money(bucket.to)}`));
    chart.applyOptions({ timeScale: { tickMarkFormatter: (time) => fmt.money(buckets[Math.round(time / DAY) - 1]?.from ?? "") } });
    const series = chart.addHistogramSeries({ priceFormat: { type: "price", precision: 0, minMove: 1 }, lastValueVisible: false, priceLineVisible: false });
    series.setData(buckets.map((bucket, index) => ({ time: at(index), value: bucket.trades, color: Number(bucket.from) >= 0 ? GAIN : LOSS })));
    chart.timeScale().fitContent();
    charts.push(chart);
  });
}

function renderDaily(block, daily, charts) {
  if (!daily.length) {
    block.append(el("p", { className: "muted", text: "No closed trades yet." }));
    return;
  }
  const box = canvas(`Realized P&L on each of ${daily.length} New York trading day(s) with a close.`);
  block.append(box, dataTable("Daily P&L as a table", [["Date", (d) => d.date], ["P&L", (d) => fmt.money(d.pnl)], ["Trades", (d) => String(d.trades)]], daily));
  requestAnimationFrame(() => {
    const chart = createChart(box, BASE);
    const series = chart.addHistogramSeries({ priceFormat: { type: "price", precision: 0, minMove: 1 }, lastValueVisible: false, priceLineVisible: false });
    series.setData(daily.map((day) => ({ time: day.date, value: Number(day.pnl), color: Number(day.pnl) >= 0 ? GAIN : LOSS })));
    chart.timeScale().fitContent();
    charts.push(chart);
  });
}

// --- calibration -----------------------------------------------------------------------------------

function flag(result) {
  if (result.monotonic === null) return el("span", { className: "flag flag-none", text: "too few trades" });
  if (result.monotonic) return el("span", { className: "flag flag-ok", text: "monotonic" });
  const which = [!result.win_rate_monotonic && "win rate", !result.expectancy_monotonic && "expectancy"].filter(Boolean).join(" and ");
  return el("span", { className: "flag flag-warn", title: `The ${which} does not rise with the score`, text: `non-monotonic: ${which}` });
}

function renderScore(name, result, charts) {
  const buckets = result.buckets;
  const card = el("section", { className: "calibration-card", dataset: { score: name, monotonic: String(result.monotonic) } },
    el("h3", {}, SCORE_NAMES[name] || words(name), " ", flag(result)));
  if (!buckets.length) {
    card.append(el("p", { className: "muted", text: "No closed trade has this score." }));
    return card;
  }
  const labels = buckets.map((b) => `D${b.bucket} (${b.score_min}–${b.score_max})`);
  const box = canvas(`${SCORE_NAMES[name] || name}: realized win rate and expectancy in each of ${buckets.length} score bucket(s), lowest score first. `
    + buckets.map((b, i) => `${labels[i]}: win rate ${pct(b.win_rate)}, expectancy ${fmt.money(b.expectancy)}`).join("; ") + ".", "chart-canvas chart-small");
  card.append(box,
    el("p", { className: "muted chart-caption" }, el("span", { className: "key key-bar" }), " expectancy per trade ($, right) ",
      el("span", { className: "key key-line" }), " win rate (%, left)", result.spearman !== null ? ` · Spearman ρ ${result.spearman}` : ""),
    dataTable("Buckets as a table", [["Bucket", (b) => `D${b.bucket}`], ["Score", (b) => `${b.score_min}–${b.score_max}`], ["Trades", (b) => String(b.trades)],
      ["Win rate", (b) => pct(b.win_rate)], ["Expectancy", (b) => fmt.money(b.expectancy)]], buckets));
  requestAnimationFrame(() => {
    const chart = categoryChart(box, labels, {
      leftPriceScale: { visible: true, borderColor: "#334155", scaleMargins: { top: 0.08, bottom: 0.08 } },
      rightPriceScale: { ...BASE.rightPriceScale, scaleMargins: { top: 0.08, bottom: 0.08 } },
    });
    chart.applyOptions({ timeScale: { tickMarkFormatter: (time) => `D${buckets[Math.round(time / DAY) - 1]?.bucket ?? ""}` } });
    const quiet = { lastValueVisible: false, priceLineVisible: false };
    const expectancy = chart.addHistogramSeries({ ...quiet, priceFormat: { type: "price", precision: 0, minMove: 1 } });
    expectancy.setData(buckets.map((b, i) => ({ time: at(i), value: Number(b.expectancy), color: Number(b.expectancy) >= 0 ? "rgba(74, 222, 128, .55)" : "rgba(248, 113, 113, .55)" })));
    const winRate = chart.addLineSeries({ ...quiet, priceScaleId: "left", color: LINE, lineWidth: 2, pointMarkersVisible: true, priceFormat: { type: "custom", minMove: 1, formatter: (value) => `${value.toFixed(0)}%` } });
    winRate.setData(buckets.map((b, i) => ({ time: at(i), value: b.win_rate === null ? 0 : b.win_rate * 100 })));
    winRate.applyOptions({ autoscaleInfoProvider: () => ({ priceRange: { minValue: 0, maxValue: 100 } }) });
    chart.timeScale().fitContent();
    charts.push(chart);
  });
  return card;
}

function renderCalibration(section, calibration, charts) {
  const flagged = calibration.flagged || [];
  section.append(el("p", { className: flagged.length ? "calibration-flagged warn-text" : "muted" },
    flagged.length
      ? `Outcomes do not rise with ${flagged.map((name) => SCORE_NAMES[name] || name).join(", ")}: a higher score did not mean a better trade.`
      : `Realized outcomes per score decile over ${calibration.trades} closed trade(s).`));
  section.append(el("div", { className: "calibration-grid" },
    Object.entries(calibration.scores).map(([name, result]) => renderScore(name, result, charts))));
}

// --- exit replay heat map ----------------------------------------------------------------------------

const LEVELS = 5;

function heatClass(value, scale) {
  const number = Number(value);
  if (!scale || number === 0) return "heat-0";
  const level = Math.max(1, Math.min(LEVELS, Math.ceil((Math.abs(number) / scale) * LEVELS)));
  return number > 0 ? `heat-p${level}` : `heat-n${level}`;
}

function heatMap(strategy, slGrid, tpGrid, index) {
  const cells = new Map(strategy.cells.map((cell) => [`${cell.sl_pct}/${cell.tp_pct}`, cell]));
  const scale = Math.max(...strategy.cells.map((cell) => Math.abs(Number(cell.total_pnl))));
  const best = strategy.best;
  const summaryId = `heatmap-${index}`;
  // The summary stays outside the scrolling box, so a phone shows all of it; it names the table.
  const summary = el("p", { className: "heatmap-summary", id: summaryId },
    el("strong", { text: strategy.strategy || "(no strategy)" }),
    ` · ${strategy.trades} trade(s) · actual ${fmt.money(strategy.actual_pnl)} · best in hindsight SL −${best.sl_pct}% / TP +${best.tp_pct}%: ${fmt.money(best.total_pnl)}`);
  const table = el("table", { className: "heatmap", "aria-labelledby": summaryId, dataset: { strategy: strategy.strategy } },
    el("thead", {}, el("tr", {}, el("th", { scope: "col", className: "corner", text: "SL \\ TP" }),
      tpGrid.map((tp) => el("th", { scope: "col", text: `+${tp}%` })))),
    el("tbody", {}, slGrid.map((sl) => el("tr", {}, el("th", { scope: "row", text: `−${sl}%` }),
      tpGrid.map((tp) => {
        const cell = cells.get(`${sl}/${tp}`);
        const isBest = sl === best.sl_pct && tp === best.tp_pct;
        return el("td", {
          className: `${heatClass(cell.total_pnl, scale)}${isBest ? " best" : ""}`,
          title: `SL −${sl}%, TP +${tp}%: total ${fmt.money(cell.total_pnl)}, average ${fmt.money(cell.avg_pnl)}, win rate ${pct(cell.win_rate)}${isBest ? " (best)" : ""}`,
          dataset: { sl, tp, pnl: cell.total_pnl },
        }, fmt.money(cell.total_pnl), isBest ? el("span", { className: "visually-hidden", text: " (best)" }) : null);
      })))));
  return el("div", { className: "heatmap-card" }, summary, el("div", { className: "table-scroll" }, table));
}

function renderReplay(section, replay) {
  section.append(el("p", { className: "hindsight-note" }, el("strong", { text: "Hindsight: " }), replay.note.replace(/^Hindsight:\s*/, "")));
  if (!replay.strategies.length) {
    section.append(el("p", { className: "muted", text: "No closed trades to replay yet." }));
    return;
  }
  section.append(el("p", { className: "muted heat-legend" }, "Total P&L of each bracket (stop-loss below, take-profit above the entry): ",
    el("span", { className: "heat-n5 swatch", text: "loss" }), " ", el("span", { className: "heat-0 swatch", text: "0" }), " ",
    el("span", { className: "heat-p5 swatch", text: "gain" }), " · the outlined cell is the best."));
  section.append(el("div", { className: "heatmaps" },
    replay.strategies.map((strategy, index) => heatMap(strategy, replay.sl_pct, replay.tp_pct, index))));
}

// --- the tab -----------------------------------------------------------------------------------------

function block(name, title, ...children) {
  return el("section", { className: "metric-block", dataset: { metric: name } }, el("h2", { className: "titled", text: title }), ...children);
}

// Draws the three answers into `box`; returns the charts made, for the caller to remove later.
export function renderPerformance(box, performance, calibration, replay) {
  const charts = [];
  const equity = block("equity_curve", "Equity curve");
  const chart = el("div", { className: "equity-chart" });
  equity.append(chart);
  if (performance.equity_curve.closed_at.length) requestAnimationFrame(() => charts.push(renderEquity(chart, performance.equity_curve)));
  else equity.append(el("p", { className: "muted", text: "No closed trades yet." }));
  const daily = block("daily", "Daily P&L");
  renderDaily(daily, performance.daily, charts);
  const distribution = block("pnl_distribution", "P&L distribution");
  renderDistribution(distribution, performance.pnl_distribution, charts);
  const calibrationBlock = block("calibration", "Calibration: does a higher score mean a better trade?");
  renderCalibration(calibrationBlock, calibration, charts);
  const replayBlock = block("exit_replay", "Exit replay (hindsight): other SL/TP brackets on the recorded paths");
  renderReplay(replayBlock, replay);
  const rest = Object.entries(performance).filter(([name]) => !DRAWN.has(name)).map(([name, value]) =>
    typeof value !== "object" || value === null
      ? el("p", { className: "muted" }, el("strong", { text: `${words(name)}: ` }), scalar(value))
      : el("section", { className: "metric-block", dataset: { metric: name } }, el("h2", { text: words(name) }), describe(value)));
  box.replaceChildren(el("div", { className: "chart-row" }, equity, daily, distribution), calibrationBlock, replayBlock, ...rest,
    el("p", { className: "muted money-note", text: `Money: ${performance.money}.` }),
    el("p", { className: "chart-credit muted" }, el("a", { href: "https://www.tradingview.com/", rel: "noopener", text: "Charts by TradingView Lightweight Charts™" })));
  return charts;
}

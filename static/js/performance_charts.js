// Charts of the Performance tab: the equity curve with its drawdown ("underwater") below it, the
// P&L of each New York day, and the distribution of trade results. Every value comes from the API;
// colours come from the stylesheet's custom properties (--gain, --loss, ...) through chart.js, and
// every chart repaints itself when the system switches between light and dark.

import { createChart } from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { followTheme, renderEquity } from "./chart.js";
import { el } from "./dom.js";
import * as fmt from "./format.js";

const DAY = 86400;
const at = (index) => (index + 1) * DAY;

// A theme colour ("#f87171" or "rgb(…)") at some opacity, for fills under a line.
function faded(value, opacity) {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(value);
  const parts = hex ? hex.slice(1).map((part) => parseInt(part, 16)) : (value.match(/\d+(\.\d+)?/g) || []).slice(0, 3);
  return parts.length === 3 ? `rgba(${parts.join(", ")}, ${opacity})` : value;
}

// What the tab's charts share; background, text, grid and borders are the theme's (followTheme).
function base() {
  return { autoSize: true, layout: { attributionLogo: false }, handleScroll: false, handleScale: false };
}

// A bar coloured by its sign, in the theme's gain and loss colours.
const signed = (value, colours) => (value >= 0 ? colours.gain : colours.loss);

export function canvas(label, className = "chart-canvas") {
  return el("div", { className, role: "img", "aria-label": label });
}

// Lightweight Charts only knows a time axis: categories (buckets, deciles) sit one "day" apart
// and every label the axis or the crosshair shows is the category's own.
export function categoryChart(box, labels, options = {}) {
  const name = (time) => labels[Math.round(time / DAY) - 1] ?? "";
  return followTheme(createChart(box, {
    ...base(), ...options,
    timeScale: { tickMarkFormatter: name, fixLeftEdge: true, fixRightEdge: true },
    localization: { timeFormatter: name },
  }));
}

export { at, DAY };

export function dataTable(summary, columns, rows) {
  return el("details", { className: "chart-data" }, el("summary", { text: summary }),
    el("table", { className: "metrics-table responsive" },
      el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", { scope: "col", text: title })))),
      el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([title, value]) => el("td", { dataset: { label: title }, text: value(row) })))))));
}

const NONE = "No closed trades in this period.";

// The equity after each trade, and under it how far below its running high it stood.
export function renderEquityBlock(block, curve, charts) {
  if (!curve.closed_at.length) {
    block.append(el("p", { className: "muted", text: NONE }));
    return;
  }
  const holder = el("div", { className: "equity-chart" });
  const deepest = curve.drawdown.reduce((low, value) => Math.min(low, Number(value)), 0);
  block.append(holder,
    el("p", { className: "muted chart-caption" }, el("span", { className: "key key-line" }), " equity after each close ",
      el("span", { className: "key key-under" }), ` drawdown below the running high (deepest ${fmt.money(deepest)})`));
  requestAnimationFrame(() => {
    const chart = renderEquity(holder, curve);
    if (!chart) return;
    chart.priceScale("right").applyOptions({ scaleMargins: { top: 0.05, bottom: 0.35 } });
    // A baseline at $0: the fill runs from 0 down to the drawdown, so "underwater" reads as depth.
    const under = chart.addBaselineSeries({
      priceScaleId: "underwater", baseValue: { type: "price", price: 0 }, lineWidth: 1, lastValueVisible: false, priceLineVisible: false,
      title: "drawdown", topFillColor1: "transparent", topFillColor2: "transparent",
    });
    followTheme(chart, ({ loss }) => under.applyOptions({
      topLineColor: loss, bottomLineColor: loss, bottomFillColor1: faded(loss, 0.2), bottomFillColor2: faded(loss, 0.6),
    }));
    under.applyOptions({ autoscaleInfoProvider: (original) => {
      const info = original();
      if (info?.priceRange) info.priceRange.maxValue = 0;
      return info;
    } });
    chart.priceScale("underwater").applyOptions({ scaleMargins: { top: 0.72, bottom: 0 } });
    const byTime = new Map();
    curve.closed_at.forEach((iso, index) => byTime.set(Math.floor(Date.parse(iso) / 1000), Number(curve.drawdown[index])));
    under.setData([...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
    chart.timeScale().fitContent();
    charts.push(chart);
  });
}

export function renderDaily(block, daily, charts) {
  if (!daily.length) {
    block.append(el("p", { className: "muted", text: NONE }));
    return;
  }
  const box = canvas(`Realized P&L on each of ${daily.length} New York trading day(s) with a close.`);
  block.append(box, dataTable("Daily P&L as a table", [["Day", (d) => fmt.day(d.date)], ["P&L", (d) => fmt.money(d.pnl)], ["Trades", (d) => String(d.trades)]], daily));
  requestAnimationFrame(() => {
    const chart = createChart(box, base());
    const series = chart.addHistogramSeries({ priceFormat: { type: "price", precision: 0, minMove: 1 }, lastValueVisible: false, priceLineVisible: false });
    followTheme(chart, (colours) => series.setData(daily.map((d) => ({ time: d.date, value: Number(d.pnl), color: signed(Number(d.pnl), colours) }))));
    chart.timeScale().fitContent();
    charts.push(chart);
  });
}

export function renderDistribution(block, distribution, charts) {
  const buckets = distribution.buckets || [];
  if (!buckets.length) {
    block.append(el("p", { className: "muted", text: NONE }));
    return;
  }
  const width = fmt.money(distribution.bucket_width).replace(/^\+/, "");
  const total = buckets.reduce((sum, bucket) => sum + bucket.trades, 0);
  const box = canvas(`Histogram of ${total} closed trades by realized P&L, in buckets of ${width} from ${fmt.money(buckets[0].from)} to ${fmt.money(buckets[buckets.length - 1].to)}.`);
  block.append(box, el("p", { className: "muted chart-caption", text: `Trades per realized-P&L bucket of ${width}; green buckets are wins, red ones losses.` }),
    dataTable("P&L distribution as a table", [["From", (b) => fmt.money(b.from)], ["To", (b) => fmt.money(b.to)], ["Trades", (b) => String(b.trades)], ["Wins", (b) => String(b.wins)]], buckets));
  requestAnimationFrame(() => {
    const chart = categoryChart(box, buckets.map((bucket) => `${fmt.money(bucket.from)} to ${fmt.money(bucket.to)}`));
    chart.applyOptions({ timeScale: { tickMarkFormatter: (time) => fmt.money(buckets[Math.round(time / DAY) - 1]?.from ?? "") } });
    const series = chart.addHistogramSeries({ priceFormat: { type: "price", precision: 0, minMove: 1 }, lastValueVisible: false, priceLineVisible: false });
    followTheme(chart, (colours) => series.setData(buckets.map((bucket, index) => ({ time: at(index), value: bucket.trades, color: signed(Number(bucket.from), colours) }))));
    chart.timeScale().fitContent();
    charts.push(chart);
  });
}

// The P&L chart of one trade: its mark over the snapshots, with entry, stop-loss and take-profit
// as price lines and the bookend (pre-/post-market) and fill points marked. TradingView's
// Lightweight Charts, vendored in static/vendor/ with its licence; the attribution is a visible
// link under the chart (the library's own logo would need an inline <style>, which our CSP forbids).

import { createChart, LineStyle, LineType } from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";
import { el } from "./dom.js";
import { levelAt, moveCount, stepPoints } from "./exit_paths.js";
import * as fmt from "./format.js";

// Colours are named after the page's CSS custom properties (static/css/app.css, `--chart-*`, `--gain`,
// `--loss`): a chart is painted in the theme the system asks for, and repainted when it switches.
const MARKERS = {
  PRE_MARKET: { text: "pre", colour: "bookend", shape: "circle", position: "belowBar" },
  POST_MARKET: { text: "post", colour: "bookend", shape: "circle", position: "aboveBar" },
  FILL: { text: "fill", colour: "fill", shape: "square", position: "belowBar" },
};
const COLOURS = ["bg", "text", "grid", "border", "line", "area", "entry", "bookend", "fill"];
const DARK = window.matchMedia("(prefers-color-scheme: dark)");

// The theme's chart colours, as the stylesheet resolves them now.
export function chartColours() {
  const style = getComputedStyle(document.documentElement);
  const colours = Object.fromEntries(COLOURS.map((name) => [name, style.getPropertyValue(`--chart-${name}`).trim()]));
  colours.gain = style.getPropertyValue("--gain").trim();
  colours.loss = style.getPropertyValue("--loss").trim();
  colours.muted = style.getPropertyValue("--muted").trim();
  return colours;
}

// What every chart shares: background, text, grid and scale borders.
export function chartFrame(colours) {
  return {
    layout: { background: { color: colours.bg }, textColor: colours.text },
    grid: { vertLines: { color: colours.grid }, horzLines: { color: colours.grid } },
    rightPriceScale: { borderColor: colours.border },
    timeScale: { borderColor: colours.border },
  };
}

// Charts on the page and how each repaints itself; one whose element has left the page is forgotten.
const painters = new Set();
DARK.addEventListener("change", () => {
  const colours = chartColours();
  for (const painter of painters) {
    if (painter.chart.chartElement().isConnected) painter.paint(colours);
    else painters.delete(painter);
  }
});

// Paints `chart` now, in the theme's colours, and again whenever the system scheme changes.
export function followTheme(chart, paint = () => {}) {
  const painter = { chart, paint: (colours) => { chart.applyOptions(chartFrame(colours)); paint(colours); } };
  painters.add(painter);
  painter.paint(chartColours());
  return chart;
}

function points(snapshots) {
  const byTime = new Map();
  for (const snapshot of snapshots) {
    byTime.set(Math.floor(Date.parse(snapshot.timestamp) / 1000), snapshot);
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]);
}

// The stop-loss and the take-profit as stepped lines over the mark, where the trade's detail
// carries their paths (a trailing stop's every move lands at its time); else as flat price lines.
const EXITS = [
  { key: "stop", path: "stop_path", price: "sl_price", title: "SL", colour: "loss", name: "stop-loss" },
  { key: "target", path: "target_path", price: "tp_price", title: "TP", colour: "gain", name: "take-profit" },
];

function exitSeries(chart, trade, from, to) {
  // Both exits run to the same end: the last mark, or a later move of either.
  const moves = EXITS.flatMap((exit) => (trade[exit.path] || []).slice(1, -1).map((step) => Math.floor(Date.parse(step.at) / 1000)));
  to = Math.max(to, ...moves);
  return EXITS.map((exit) => {
    const points = stepPoints(trade[exit.path], from, to);
    if (!points.length) return { ...exit, points };
    const series = chart.addLineSeries({ lineType: LineType.WithSteps, lineWidth: 2, lineStyle: LineStyle.Dashed,
      title: exit.title, priceLineVisible: false, crosshairMarkerVisible: false, lastValueVisible: true });
    series.setData(points.map(({ time, value }) => ({ time, value })));
    return { ...exit, points, series };
  });
}

// Every point in view with room for the first and last time labels (centred on their points, they
// are cut at the edges when many points make the spacing narrow, as on a phone), refitted as the box resizes.
function fitWithRoom(chart, bars) {
  const scale = chart.timeScale();
  const fit = (width) => {
    if (bars < 2 || !width) return scale.fitContent();
    const pad = Math.max(0.5, (24 * (bars - 1)) / Math.max(width - 48, 1));
    scale.setVisibleLogicalRange({ from: -pad, to: bars - 1 + pad });
  };
  scale.subscribeSizeChange((width) => fit(width));
  fit(scale.width());
}

// Under the chart: what each line is, and its value where the pointer is (the latest without one).
function legend(exits, rows) {
  const value = (key) => el("span", { className: "legend-value", dataset: { legendValue: key } });
  const item = (key, swatch, name, extra = null) => el("li", { dataset: { legend: key } },
    el("span", { className: `key key-${swatch}`, "aria-hidden": "true" }), ` ${name} `, value(key), extra ? " " : null, extra);
  const node = el("ul", { className: "chart-legend muted" },
    item("mark", "line", "mark"),
    exits.map((exit) => item(exit.key, exit.colour, exit.name, el("small", { className: "legend-why", dataset: { legendWhy: exit.key } }))));
  const show = (time) => {
    const mark = time === null ? rows[rows.length - 1] : rows.filter(([at]) => at <= time).pop();
    node.querySelector('[data-legend-value="mark"]').textContent = mark ? fmt.price(mark[1].mark_price) : "";
    for (const exit of exits) {
      const step = levelAt(exit.points, time === null ? Infinity : time);
      node.querySelector(`[data-legend-value="${exit.key}"]`).textContent = step ? fmt.price(step.value) : "";
      const moves = moveCount(exit.points);
      const why = step && step.why !== "set at the open" ? step.why : moves ? "" : "not moved";
      node.querySelector(`[data-legend-why="${exit.key}"]`).textContent = why ? `(${why})` : "";
    }
  };
  show(null);
  return { node, show };
}

export function renderChart(container, trade, snapshots) {
  container.replaceChildren();
  const rows = points(snapshots);
  if (!rows.length) {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = "No snapshots yet: the chart starts with the first mark.";
    container.append(note);
    return null;
  }
  const canvas = document.createElement("div");
  canvas.className = "chart-canvas";
  canvas.setAttribute("role", "img");
  const last = rows[rows.length - 1][1];
  container.append(canvas);
  const chart = createChart(canvas, {
    autoSize: true,
    layout: { attributionLogo: false },
    timeScale: {
      timeVisible: true, secondsVisible: false,
      tickMarkFormatter: (time) => new Date(time * 1000).toLocaleTimeString("en-US", { timeZone: "America/New_York", hour: "2-digit", minute: "2-digit", hour12: false }),
    },
    localization: { timeFormatter: (time) => new Date(time * 1000).toLocaleString("en-US", { timeZone: "America/New_York", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) + " ET" },
  });
  // Keep the exits in view even when the mark has stayed far from them.
  const exitPrices = [trade.sl_price, trade.tp_price, trade.entry_price].filter((value) => value !== null && value !== undefined).map(Number);
  const autoscaleInfoProvider = (original) => {
    const info = original();
    if (info?.priceRange) {
      info.priceRange.minValue = Math.min(info.priceRange.minValue, ...exitPrices);
      info.priceRange.maxValue = Math.max(info.priceRange.maxValue, ...exitPrices);
    }
    return info;
  };
  const series = chart.addLineSeries({ lineWidth: 2, title: "mark", autoscaleInfoProvider });
  series.setData(rows.map(([time, snapshot]) => ({ time, value: Number(snapshot.mark_price) })));
  const exits = exitSeries(chart, trade, rows[0][0], rows[rows.length - 1][0]);
  const stepped = exits.filter((exit) => exit.series);
  const flat = EXITS.filter((exit) => !stepped.some((drawn) => drawn.key === exit.key)).map((exit) => [trade[exit.price], exit.title, exit.colour, LineStyle.Dashed]);
  const lines = [[trade.entry_price, "entry", "entry", LineStyle.Solid], ...flat]
    .filter(([price]) => price !== null && price !== undefined)
    .map(([price, title, colour, lineStyle]) => ({ colour, line: series.createPriceLine({ price: Number(price), title, lineWidth: 1, lineStyle, axisLabelVisible: true }) }));
  const marked = rows.filter(([, snapshot]) => MARKERS[snapshot.kind]);
  followTheme(chart, (colours) => {
    series.applyOptions({ color: colours.line });
    for (const { colour, line } of lines) line.applyOptions({ color: colours[colour] });
    for (const exit of stepped) exit.series.applyOptions({ color: colours[exit.colour] });
    series.setMarkers(marked.map(([time, snapshot]) => {
      const { colour, ...marker } = MARKERS[snapshot.kind];
      return { time, ...marker, color: colours[colour] };
    }));
  });
  // What the chart draws, for a reader of the page's data (and its tests): each exit's points and moves.
  const moved = [];
  for (const exit of stepped) {
    canvas.dataset[`${exit.key}Path`] = JSON.stringify(exit.points.map(({ time, value }) => [time, value]));
    canvas.dataset[`${exit.key}Moves`] = String(moveCount(exit.points));
    if (moveCount(exit.points)) moved.push(`the ${exit.name} moved ${moveCount(exit.points)} time(s)`);
  }
  canvas.setAttribute("aria-label", `Mark price over ${rows.length} snapshots, last ${Number(last.mark_price).toFixed(2)}; entry, stop-loss and take-profit shown as lines${moved.length ? `, ${moved.join(", ")}` : ""}.`);
  const times = new Set([...rows.map(([time]) => time), ...stepped.flatMap((exit) => exit.points.map((point) => point.time))]);
  fitWithRoom(chart, times.size);
  if (stepped.length) {
    const key = legend(stepped, rows);
    chart.subscribeCrosshairMove((param) => key.show(param.time ?? null));
    container.append(key.node);
  }
  const credit = document.createElement("p");
  credit.className = "chart-credit muted";
  const link = document.createElement("a");
  link.href = "https://www.tradingview.com/";
  link.rel = "noopener";
  link.textContent = "Charts by TradingView Lightweight Charts™";
  credit.append(link);
  container.append(credit);
  return chart;
}

// The account's equity after each closed trade, as the analytics API lists it (columnar:
// `closed_at[]` and `equity[]`). Points closed in the same second keep the last equity.
export function renderEquity(container, curve) {
  const byTime = new Map();
  (curve.closed_at || []).forEach((at, index) => byTime.set(Math.floor(Date.parse(at) / 1000), Number(curve.equity[index])));
  const rows = [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
  if (!rows.length) return null;
  const canvas = document.createElement("div");
  canvas.className = "chart-canvas";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Equity after each of ${rows.length} closed trade(s), last ${rows[rows.length - 1].value.toFixed(2)}.`);
  container.append(canvas);
  const chart = createChart(canvas, { autoSize: true, layout: { attributionLogo: false }, timeScale: { timeVisible: false } });
  const series = chart.addAreaSeries({ title: "equity" });
  series.setData(rows);
  const start = curve.start !== undefined && curve.start !== null
    ? series.createPriceLine({ price: Number(curve.start), title: "start", lineWidth: 1, lineStyle: LineStyle.Dashed }) : null;
  followTheme(chart, (colours) => {
    series.applyOptions({ lineColor: colours.line, topColor: colours.area, bottomColor: "rgba(0, 0, 0, 0)" });
    start?.applyOptions({ color: colours.muted });
  });
  chart.timeScale().fitContent();
  return chart;
}

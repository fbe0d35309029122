// The P&L chart of one trade: its mark over the snapshots, with entry, stop-loss and take-profit
// as price lines and the bookend (pre-/post-market) and fill points marked. TradingView's
// Lightweight Charts, vendored in static/vendor/ with its licence; the attribution is a visible
// link under the chart (the library's own logo would need an inline <style>, which our CSP forbids).

import { createChart, LineStyle } from "../vendor/lightweight-charts/lightweight-charts.standalone.production.mjs";

const MARKERS = {
  PRE_MARKET: { text: "pre", color: "#a78bfa", shape: "circle", position: "belowBar" },
  POST_MARKET: { text: "post", color: "#a78bfa", shape: "circle", position: "aboveBar" },
  FILL: { text: "fill", color: "#fbbf24", shape: "square", position: "belowBar" },
};

function points(snapshots) {
  const byTime = new Map();
  for (const snapshot of snapshots) {
    byTime.set(Math.floor(Date.parse(snapshot.timestamp) / 1000), snapshot);
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]);
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
  canvas.setAttribute("aria-label", `Mark price over ${rows.length} snapshots, last ${Number(last.mark_price).toFixed(2)}; entry, stop-loss and take-profit shown as lines.`);
  container.append(canvas);
  const chart = createChart(canvas, {
    autoSize: true,
    layout: { background: { color: "#0f1720" }, textColor: "#cbd5e1", attributionLogo: false },
    grid: { vertLines: { color: "#1e293b" }, horzLines: { color: "#1e293b" } },
    timeScale: {
      timeVisible: true, secondsVisible: false,
      tickMarkFormatter: (time) => new Date(time * 1000).toLocaleTimeString("en-US", { timeZone: "America/New_York", hour: "2-digit", minute: "2-digit", hour12: false }),
    },
    localization: { timeFormatter: (time) => new Date(time * 1000).toLocaleString("en-US", { timeZone: "America/New_York", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) + " ET" },
    rightPriceScale: { borderColor: "#334155" },
  });
  // Keep the exits in view even when the mark has stayed far from them.
  const exits = [trade.sl_price, trade.tp_price, trade.entry_price].filter((value) => value !== null && value !== undefined).map(Number);
  const autoscaleInfoProvider = (original) => {
    const info = original();
    if (info?.priceRange) {
      info.priceRange.minValue = Math.min(info.priceRange.minValue, ...exits);
      info.priceRange.maxValue = Math.max(info.priceRange.maxValue, ...exits);
    }
    return info;
  };
  const series = chart.addLineSeries({ color: "#60a5fa", lineWidth: 2, title: "mark", autoscaleInfoProvider });
  series.setData(rows.map(([time, snapshot]) => ({ time, value: Number(snapshot.mark_price) })));
  const line = (price, title, color, style) => {
    if (price !== null && price !== undefined) {
      series.createPriceLine({ price: Number(price), title, color, lineWidth: 1, lineStyle: style, axisLabelVisible: true });
    }
  };
  line(trade.entry_price, "entry", "#e2e8f0", LineStyle.Solid);
  line(trade.sl_price, "SL", "#f87171", LineStyle.Dashed);
  line(trade.tp_price, "TP", "#4ade80", LineStyle.Dashed);
  series.setMarkers(rows.filter(([, snapshot]) => MARKERS[snapshot.kind]).map(([time, snapshot]) => ({ time, ...MARKERS[snapshot.kind] })));
  chart.timeScale().fitContent();
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
  const chart = createChart(canvas, {
    autoSize: true,
    layout: { background: { color: "#0f1720" }, textColor: "#cbd5e1", attributionLogo: false },
    grid: { vertLines: { color: "#1e293b" }, horzLines: { color: "#1e293b" } },
    timeScale: { timeVisible: false },
  });
  const series = chart.addAreaSeries({ lineColor: "#60a5fa", topColor: "rgba(96, 165, 250, .35)", bottomColor: "rgba(96, 165, 250, 0)", title: "equity" });
  series.setData(rows);
  if (curve.start !== undefined && curve.start !== null) {
    series.createPriceLine({ price: Number(curve.start), title: "start", color: "#94a3b8", lineWidth: 1, lineStyle: LineStyle.Dashed });
  }
  chart.timeScale().fitContent();
  return chart;
}

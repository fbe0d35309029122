// The strategy builder's payoff chart: the P&L in dollars against the underlying's price, at expiry
// and today, on one chart. Drawn as SVG rather than with Lightweight Charts (chart.js): that
// library's horizontal axis is time, its points evenly spaced by index, while a payoff's is a price
// with the kinks at the strikes. The SVG scales with its box (a phone's width too), and its colours
// are the theme's custom properties through CSS classes (static/css/app.css, .payoff-*), so it
// follows the system's light or dark scheme as the other charts do.

import * as fmt from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const PAD = { left: 64, right: 12, top: 14, bottom: 30 };

function node(tag, attributes = {}, text = null) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

function scale(from, to, low, high) {
  const span = high - low || 1;
  return (value) => from + ((value - low) / span) * (to - from);
}

function path(points, x, y) {
  return points.map(([price, pnl], index) => `${index ? "L" : "M"}${x(price).toFixed(1)},${y(pnl).toFixed(1)}`).join(" ");
}

// `payoff`: the API's points ({underlying, at_expiry, today}, strings); `marks`: the spot and the
// breakevens, drawn as thin vertical lines. Returns the number of curves drawn.
export function renderPayoff(container, payoff, { spot = null, breakevens = [] } = {}) {
  const curves = [
    { key: "expiry", label: "at expiry", points: payoff.filter((point) => point.at_expiry !== null).map((point) => [Number(point.underlying), Number(point.at_expiry)]) },
    { key: "today", label: "today", points: payoff.filter((point) => point.today !== null).map((point) => [Number(point.underlying), Number(point.today)]) },
  ].filter((curve) => curve.points.length > 1);
  if (!curves.length) {
    container.replaceChildren();
    return 0;
  }
  // Drawn at the box's own size (the builder draws again when it resizes): text stays legible on a phone.
  const WIDTH = Math.max(280, Math.round(container.clientWidth || 640));
  const HEIGHT = WIDTH < 500 ? 220 : 300;
  const all = curves.flatMap((curve) => curve.points);
  const prices = all.map(([price]) => price);
  const pnls = [0, ...all.map(([, pnl]) => pnl)];
  const [low, high] = [Math.min(...prices), Math.max(...prices)];
  const [bottom, top] = [Math.min(...pnls), Math.max(...pnls)];
  const room = (top - bottom) * 0.06 || 1;
  const x = scale(PAD.left, WIDTH - PAD.right, low, high);
  const y = scale(HEIGHT - PAD.bottom, PAD.top, bottom - room, top + room);
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, class: "payoff", "aria-hidden": "true" });
  // Gain above the zero line, loss below: shaded so colour is not the only signal (the axis says which).
  svg.append(node("rect", { x: PAD.left, y: PAD.top, width: WIDTH - PAD.left - PAD.right, height: Math.max(0, y(0) - PAD.top), class: "payoff-gain-zone" }));
  svg.append(node("rect", { x: PAD.left, y: y(0), width: WIDTH - PAD.left - PAD.right, height: Math.max(0, HEIGHT - PAD.bottom - y(0)), class: "payoff-loss-zone" }));
  svg.append(node("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0), class: "payoff-zero" }));
  for (const value of [top, bottom]) {
    svg.append(node("text", { x: PAD.left - 6, y: y(value) + 4, class: "payoff-label", "text-anchor": "end" }, fmt.money(value)));
  }
  svg.append(node("text", { x: PAD.left - 6, y: y(0) + 4, class: "payoff-label", "text-anchor": "end" }, "$0"));
  for (const [value, anchor] of [[low, "start"], [high, "end"]]) {
    svg.append(node("text", { x: x(value), y: HEIGHT - 8, class: "payoff-label", "text-anchor": anchor }, fmt.price(value)));
  }
  for (const breakeven of breakevens.map(Number)) {
    svg.append(node("line", { x1: x(breakeven), x2: x(breakeven), y1: PAD.top, y2: HEIGHT - PAD.bottom, class: "payoff-breakeven" }));
  }
  if (spot !== null) {
    const at = x(Number(spot));
    svg.append(node("line", { x1: at, x2: at, y1: PAD.top, y2: HEIGHT - PAD.bottom, class: "payoff-spot" }));
    svg.append(node("text", { x: at, y: HEIGHT - 8, class: "payoff-label", "text-anchor": "middle" }, fmt.price(spot)));
  }
  for (const curve of curves) {
    svg.append(node("path", { d: path(curve.points, x, y), class: `payoff-curve payoff-${curve.key}`, "data-curve": curve.key, "data-points": curve.points.length }));
  }
  container.replaceChildren(svg);
  container.setAttribute("aria-label", `Payoff from ${fmt.price(low)} to ${fmt.price(high)}: ${curves.map((curve) => curve.label).join(" and ")}; `
    + `from ${fmt.money(bottom)} to ${fmt.money(top)}${breakevens.length ? `, breakeven ${breakevens.map(fmt.price).join(" and ")}` : ""}.`);
  return curves.length;
}

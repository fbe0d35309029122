// A position's expanded row: the P&L chart, the latest quote and greeks, scores and verdicts, the
// adjust form and the event log. The row is kept across refreshes so typing in it survives them.

import { adjustForm, prefillAdjust } from "./adjust.js";
import { config, get } from "./api.js";
import { renderChart } from "./chart.js";
import { el } from "./dom.js";
import { eventLogItems } from "./event_log.js";
import { partsBlock } from "./exit_parts.js";
import { policyForm, prefillPolicy } from "./exit_policy_form.js";
import * as fmt from "./format.js";
import { sourceLabel } from "./marks.js";
import { state } from "./portfolio_state.js";
import { isSpread, legsTable } from "./spread_legs.js";
import { explanationGroups } from "./trade_explanation.js";

export function dropDetail(id) {
  state.expanded.delete(id);
  state.details.delete(id);
  state.charts.get(id)?.remove();
  state.charts.delete(id);
}

export function detailRow(id) {
  if (state.details.has(id)) return state.details.get(id);
  const adjust = adjustForm(id);
  const row = el("tr", { className: "detail", id: `detail-${id}`, dataset: { tradeId: id } },
    el("td", { colspan: "10" },
      el("div", { className: "detail-inner" },
        el("section", { className: "detail-chart", "aria-label": "P&L chart" }, el("h3", { text: "Mark vs entry, stop-loss and take-profit" }), el("div", { className: "chart" }),
          el("div", { className: "legs-slot" })),
        el("div", { className: "detail-side" },
          el("div", { className: "parts-slot" }),
          el("section", { className: "facts" }, el("p", { className: "muted", text: "Loading…" })),
          adjust, policyForm(id)),
        el("section", { className: "explanation", "aria-label": "The trade explained" }),
        el("section", { className: "events" }, el("h3", { text: "Event log" }), el("ol", { className: "event-log" })))));
  state.details.set(id, row);
  return row;
}

function factList(title, pairs) {
  const shown = pairs.filter(([, value]) => value !== null && value !== undefined && value !== "");
  return el("div", { className: "fact-group" }, el("h3", { text: title }),
    shown.length
      ? el("dl", {}, shown.map(([name, value]) => [el("dt", { text: name }), el("dd", { text: String(value) })]))
      : el("p", { className: "muted", text: "None recorded." }));
}

function greek(value, digits = 3) {
  return value === null || value === undefined ? null : Number(value).toFixed(digits);
}

export async function loadDetail(id) {
  const row = state.details.get(id);
  if (!row) return;
  let trade;
  let snapshots;
  try {
    [trade, snapshots] = await Promise.all([get(`${config.urls.trades}/${id}`), get(`${config.urls.trades}/${id}/snapshots`)]);
  } catch (error) {
    row.querySelector(".facts").replaceChildren(el("p", { className: "error", text: error.message }));
    return;
  }
  const last = snapshots[snapshots.length - 1] || {};
  const spread = isSpread(trade);
  row.querySelector(".legs-slot").replaceChildren(...(spread ? [legsTable(trade)] : []));
  row.querySelector(".detail-chart > h3").textContent = spread
    ? "Net mark vs entry, stop-loss and take-profit" : "Mark vs entry, stop-loss and take-profit";
  // A spread's bid and ask are held prices at the legs' natural sides: what closing it, or opening it
  // again, would come to (docs/spreads.md); a credit trade's close costs more than its mark.
  const quote = spread
    ? [["Net mark", `${fmt.price(trade.current_price)}${trade.mark_stale ? " (stale)" : ""}`],
      [trade.net_direction === "credit" ? "Close at natural (pay)" : "Close at natural (get)", fmt.price(trade.current_bid)],
      ["Open at natural", fmt.price(trade.current_ask)]]
    : [["Bid", fmt.price(trade.current_bid)], ["Ask", fmt.price(trade.current_ask)], ["Mark", fmt.price(trade.current_price)]];
  row.querySelector(".facts").replaceChildren(
    factList(spread ? "Quote (held net)" : "Quote", [...quote, ["Updated", fmt.dateTime(trade.last_updated)], ["Source", sourceLabel(last)],
      ["Underlying", last.underlying ? fmt.price(last.underlying) : null]]),
    factList(spread ? "Net greeks per unit (latest mark)" : "Greeks (latest mark)", [["Delta", greek(last.delta)], ["Gamma", greek(last.gamma, 4)], ["Theta", greek(last.theta)],
      ["Vega", greek(last.vega)], ["IV", last.iv ? `${(Number(last.iv) * 100).toFixed(1)}%` : null],
      ["Delta at entry", greek(trade.delta_at_entry)], ["IV at entry", trade.iv_at_entry ? `${(Number(trade.iv_at_entry) * 100).toFixed(1)}%` : null]]),
    factList("Scores and verdicts", [["Card score", trade.card_score], ["AI score", trade.ai_score], ["AI verdict", fmt.words(trade.ai_verdict)],
      ["Gate verdict", fmt.words(trade.gate_verdict)], ["Technical", trade.technical_score], ["Sentiment", trade.sentiment_score],
      ["Strategy", trade.strategy], ["Best so far (MFE)", trade.max_gain ? fmt.money(trade.max_gain) : null],
      ["Worst so far (MAE)", trade.max_drawdown ? fmt.money(trade.max_drawdown) : null]]));
  const parts = partsBlock(trade);
  row.querySelector(".parts-slot").replaceChildren(...(parts ? [parts] : []));
  row.querySelector(".explanation").replaceChildren(...explanationGroups(trade.explanation));
  prefillAdjust(row.querySelector("form.adjust-form"), trade);
  prefillPolicy(row.querySelector("form.policy-form"), trade);
  row.querySelector(".event-log").replaceChildren(...eventLogItems(trade.events));
  state.charts.get(id)?.remove();
  state.charts.set(id, renderChart(row.querySelector(".chart"), trade, snapshots));
}

// Calibration (does a higher scanner score mean a better trade?) and the exit replay (other
// stop/target brackets on the recorded paths, in hindsight) of the Performance tab. A score is
// flagged only when the API says the data support it; buckets with too few trades say so; the
// replay's best bracket is set against your own brackets replayed on the same path, and so is each
// exit policy (trailing, breakeven, time stops) the live engine replayed inside your brackets.

import { el } from "./dom.js";
import * as fmt from "./format.js";
import { followTheme } from "./chart.js";
import { at, canvas, categoryChart, dataTable, DAY } from "./performance_charts.js";
import { policyChips } from "./exit_policy_chips.js";

const SCORE_NAMES = { card_score: "Card score", ai_score: "AI score", technical_score: "Technical score", sentiment_score: "Sentiment score" };

// --- calibration -----------------------------------------------------------------------------------

// The API's verdict: flagged only when a fall lies beyond the 95 % ranges of buckets with enough trades.
function flag(result) {
  if (result.verdict === "non_monotonic") return el("span", { className: "flag flag-warn", title: result.reason, text: "non-monotonic" });
  if (result.verdict === "too_few_trades") return el("span", { className: "flag flag-none", title: result.reason, text: "too few trades" });
  return el("span", { className: "flag flag-ok", title: result.reason, text: result.monotonic ? "rises" : "no clear fall" });
}

const range = (b) => (b.win_rate_ci ? `${fmt.rate(b.win_rate_ci[0], 0)}–${fmt.rate(b.win_rate_ci[1], 0)}` : "—");

function renderScore(name, result, charts) {
  const buckets = result.buckets;
  const card = el("section", { className: "calibration-card", dataset: { score: name, monotonic: String(result.monotonic), verdict: result.verdict } },
    el("h3", {}, SCORE_NAMES[name] || name, " ", flag(result)), el("p", { className: "muted calibration-reason", text: result.reason }));
  if (!buckets.length) {
    return card;
  }
  const labels = buckets.map((b) => `D${b.bucket} (${b.score_min}–${b.score_max})`);
  const box = canvas(`${SCORE_NAMES[name] || name}: realized win rate and expectancy in each of ${buckets.length} score bucket(s), lowest score first. `
    + buckets.map((b, i) => `${labels[i]}: win rate ${fmt.rate(b.win_rate)}, expectancy ${fmt.money(b.expectancy)}`).join("; ") + ".", "chart-canvas chart-small");
  card.append(box,
    el("p", { className: "muted chart-caption" }, el("span", { className: "key key-bar" }), " expectancy per trade ($, right) ",
      el("span", { className: "key key-line" }), " win rate (%, left)", result.spearman !== null ? ` · Spearman ρ ${result.spearman}` : ""),
    dataTable("Buckets as a table", [["Bucket", (b) => `D${b.bucket}`], ["Score", (b) => `${b.score_min}–${b.score_max}`], ["Trades", (b) => String(b.trades)],
      ["Win rate", (b) => fmt.rate(b.win_rate)], ["95 % range", range], ["Expectancy", (b) => fmt.money(b.expectancy)],
      ["Enough trades?", (b) => (b.enough ? "yes" : `no (under ${result.min_bucket_trades})`)]], buckets));
  requestAnimationFrame(() => {
    const chart = categoryChart(box, labels, {
      leftPriceScale: { visible: true, scaleMargins: { top: 0.08, bottom: 0.08 } },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.08 } },
    });
    chart.applyOptions({ timeScale: { tickMarkFormatter: (time) => `D${buckets[Math.round(time / DAY) - 1]?.bucket ?? ""}` } });
    const quiet = { lastValueVisible: false, priceLineVisible: false };
    const expectancy = chart.addHistogramSeries({ ...quiet, priceFormat: { type: "price", precision: 0, minMove: 1 } });
    const winRate = chart.addLineSeries({ ...quiet, priceScaleId: "left", lineWidth: 2, pointMarkersVisible: true, priceFormat: { type: "custom", minMove: 1, formatter: (value) => `${value.toFixed(0)}%` } });
    followTheme(chart, (colours) => {
      chart.applyOptions({ leftPriceScale: { borderColor: colours.border } });
      expectancy.setData(buckets.map((b, i) => ({ time: at(i), value: Number(b.expectancy), color: Number(b.expectancy) >= 0 ? colours.gain : colours.loss })));
      winRate.applyOptions({ color: colours.line });
    });
    winRate.setData(buckets.map((b, i) => ({ time: at(i), value: b.win_rate === null ? 0 : b.win_rate * 100 })));
    winRate.applyOptions({ autoscaleInfoProvider: () => ({ priceRange: { minValue: 0, maxValue: 100 } }) });
    chart.timeScale().fitContent();
    charts.push(chart);
  });
  return card;
}

export function renderCalibration(section, calibration, charts) {
  const flagged = calibration.flagged || [];
  section.append(el("p", { className: flagged.length ? "calibration-flagged warn-text" : "muted" },
    flagged.length
      ? `Outcomes fall as ${flagged.map((name) => SCORE_NAMES[name] || name).join(", ")} rise${flagged.length === 1 ? "s" : ""}, beyond chance: a higher score meant a worse trade.`
      : `Realized outcomes per score decile over ${calibration.trades} closed trade(s); a score is flagged only when a fall lies beyond the 95 % ranges of buckets with enough trades.`));
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
    ` · ${strategy.trades} trade(s) · your brackets replayed ${fmt.money(strategy.own_brackets_pnl)} · best grid bracket SL −${best.sl_pct}% / TP +${best.tp_pct}%: ${fmt.money(best.total_pnl)}`,
    el("span", { className: "replay-verdict block", dataset: { verdict: strategy.comparison.verdict }, text: strategy.comparison.sentence }),
    el("span", { className: "muted block", text: Number(strategy.comparison.booked_minus_replayed) === 0
      ? `Booked ${fmt.money(strategy.actual_pnl)}, the same as the replay.`
      : `Booked ${fmt.money(strategy.actual_pnl)} (${fmt.money(strategy.comparison.booked_minus_replayed)} against the replay: commissions, fills away from the recorded mark, moved brackets or closes by hand).` }));
  const table = el("table", { className: "heatmap", "aria-labelledby": summaryId, dataset: { strategy: strategy.strategy } },
    el("thead", {}, el("tr", {}, el("th", { scope: "col", className: "corner", text: "SL \\ TP" }),
      tpGrid.map((tp) => el("th", { scope: "col", text: `+${tp}%` })))),
    el("tbody", {}, slGrid.map((sl) => el("tr", {}, el("th", { scope: "row", text: `−${sl}%` }),
      tpGrid.map((tp) => {
        const cell = cells.get(`${sl}/${tp}`);
        const isBest = sl === best.sl_pct && tp === best.tp_pct;
        return el("td", {
          className: `${heatClass(cell.total_pnl, scale)}${isBest ? " best" : ""}`,
          title: `SL −${sl}%, TP +${tp}%: total ${fmt.money(cell.total_pnl)}, average ${fmt.money(cell.avg_pnl)}, win rate ${fmt.rate(cell.win_rate)}${isBest ? " (best)" : ""}`,
          dataset: { sl, tp, pnl: cell.total_pnl },
        }, fmt.money(cell.total_pnl), isBest ? el("span", { className: "visually-hidden", text: " (best)" }) : null);
      })))));
  return el("div", { className: "heatmap-card", dataset: { strategy: strategy.strategy } }, summary,
    el("div", { className: "table-scroll" }, table));
}

// --- exit policies replayed ----------------------------------------------------------------------------

const wins = (row) => `${row.wins} of ${row.trades}`;

// The policy as its chips on a position row say it; "your own policy" has no single one.
function policyName(row, isBest) {
  const chips = row.policy ? policyChips({ exit_policy: row.policy }) : null;
  return el("th", { scope: "row", className: "policy-name" }, el("span", { className: "policy-name-line" }, chips || row.words,
    row.preset ? el("span", { className: "flag flag-none preset-flag", text: "your preset" }) : null,
    isBest ? el("span", { className: "flag flag-ok best-flag", text: "best" }) : null),
    row.trades_without_stock_price ? el("small", { className: "muted block",
      text: `${row.trades_without_stock_price} trade(s) without a recorded stock price` }) : null);
}

function policyRow(row, best) {
  const isBest = row.key === best;
  return el("tr", { className: isBest ? "best-policy" : "", dataset: { key: row.key, verdict: row.verdict } },
    policyName(row, isBest),
    el("td", { className: "num", dataset: { label: "P&L, net", pnl: row.total_pnl }, text: fmt.money(row.total_pnl) }),
    el("td", { className: "num", dataset: { label: "Wins" }, text: wins(row) }),
    el("td", { className: "num", dataset: { label: "Avg held" }, text: fmt.hours(row.avg_hold_hours) }),
    el("td", { className: "num", title: row.sentence, dataset: { label: "vs your brackets", gap: row.vs_own_brackets } },
      fmt.money(row.vs_own_brackets)));
}

function policyTable(policies, index) {
  const own = policies.own_brackets;
  const captionId = `policies-${index}`;
  return el("div", { className: "policy-replay", dataset: { strategy: policies.strategy } },
    el("p", { className: "policy-verdict", id: captionId }, el("strong", { text: "Exit policies: " }), policies.sentence),
    el("table", { className: "metrics-table responsive policy-table", "aria-labelledby": captionId, dataset: { strategy: policies.strategy } },
      el("thead", {}, el("tr", {}, ["Policy", "P&L, net", "Wins", "Avg held", "vs your brackets"].map((title) => el("th", { scope: "col", text: title })))),
      el("tbody", {},
        el("tr", { className: "own-brackets", dataset: { key: "own_brackets" } },
          el("th", { scope: "row", className: "policy-name", text: "Your own brackets" }),
          el("td", { className: "num", dataset: { label: "P&L, net", pnl: own.total_pnl }, text: fmt.money(own.total_pnl) }),
          el("td", { className: "num", dataset: { label: "Wins" }, text: wins(own) }),
          el("td", { className: "num", dataset: { label: "Avg held" }, text: fmt.hours(own.avg_hold_hours) }),
          el("td", { className: "num", dataset: { label: "vs your brackets" }, text: "—" })),
        policies.candidates.map((row) => policyRow(row, policies.best)))));
}

export function renderReplay(section, replay) {
  section.append(el("p", { className: "hindsight-note" }, el("strong", { text: "Hindsight: " }), replay.note.replace(/^Hindsight:\s*/, "")),
    el("p", { className: "muted replay-basis", text: replay.basis }));
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


// The exit policies come apart from the grid (the engine walks every recorded mark, which takes
// longer): each strategy's table goes under its heat map when the answer arrives.
export function renderPolicyReplay(section, answer) {
  section.querySelectorAll(".policy-replay, .policy-basis").forEach((node) => node.remove());
  if (!answer.strategies.length) return;
  const notes = [el("p", { className: "muted policy-basis", text: answer.basis })];
  if (answer.trades_left_out) {
    notes.push(el("p", { className: "muted policy-basis policy-left-out",
      text: `Exit policies: the ${answer.trades_replayed} most recent trades replayed; ${answer.trades_left_out} older one(s) left out. Narrow the period or the strategy to reach them.` }));
  }
  section.querySelector(".replay-basis")?.after(...notes);
  const cards = new Map([...section.querySelectorAll(".heatmap-card")].map((card) => [card.dataset.strategy, card]));
  answer.strategies.forEach((policies, index) => cards.get(policies.strategy)?.append(policyTable(policies, index)));
}

// Where a trade's stop-loss and take-profit stood over time (the detail's `stop_path` and
// `target_path`: the level set at the open, each move with who made it, the level now or at the
// close), as points a stepped line draws over the mark: the level in force when the chart starts,
// a point at each move inside it, the level at its end. Pure, so the chart and its tests agree.

const seconds = (at) => Math.floor(Date.parse(at) / 1000);

// [{time, value, why}] with strictly rising times (a chart needs them so), from `from` to `to`
// (seconds): moves before the chart starts set its first level, later ones are dropped but the
// last move, which stretches `to` (a stop the policy moved after the last mark is still drawn).
export function stepPoints(path, from, to) {
  if (!Array.isArray(path) || !path.length) return [];
  // The last step is the level now or at the close; a one-step path (nothing recorded before it)
  // is that level alone, drawn flat across the chart.
  const steps = path.length > 1 ? path.slice(0, -1) : path;
  const moves = steps.map((step) => ({ time: seconds(step.at), value: Number(step.price), why: step.why }));
  const end = Math.max(to, ...moves.slice(1).map((move) => move.time)); // the open's own time does not stretch it
  let level = moves[0];
  const points = [];
  for (const move of moves) {
    if (move.time <= from) { level = move; continue; }
    if (move.time > end) break;
    if (!points.length) points.push({ time: from, value: level.value, why: level.why });
    const last = points[points.length - 1];
    if (move.time === last.time) points[points.length - 1] = move; // two moves in one second: the later holds
    else if (move.value !== last.value) points.push(move); // a step only where the level changes
  }
  if (!points.length) points.push({ time: from, value: level.value, why: level.why });
  const last = points[points.length - 1];
  if (end > last.time) points.push({ time: end, value: last.value, why: last.why });
  return points;
}

// How many times the drawn level changed.
export function moveCount(points) {
  return points.filter((point, index) => index > 0 && point.value !== points[index - 1].value).length;
}

// The step in force at `time` (seconds), or null before the first.
export function levelAt(points, time) {
  let found = null;
  for (const point of points) {
    if (point.time > time) break;
    found = point;
  }
  return found;
}

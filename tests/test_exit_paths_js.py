"""static/js/exit_paths.js is pure: run it under node, as the chart runs it in the page."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parent.parent / "static" / "js" / "exit_paths.js"
NODE = shutil.which("node")


def _step_points(path: list[dict], start: int, end: int) -> list[dict]:
    script = (f"import {{ stepPoints }} from {json.dumps(MODULE.as_uri())};\n"
              f"console.log(JSON.stringify(stepPoints({json.dumps(path)}, {start}, {end})));")
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_one_step_path_is_its_level_across_the_chart():
    start, end = 1_796_137_200, 1_796_140_800  # 15:00 to 16:00 UTC on 1 Dec 2026
    points = _step_points([{"at": "2026-12-01T15:00:00Z", "price": "1.25", "why": "open"}], start, end)
    assert points == [{"time": start, "value": 1.25, "why": "open"}, {"time": end, "value": 1.25, "why": "open"}]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_move_inside_the_chart_is_a_step():
    start, end = 1_796_137_200, 1_796_140_800
    path = [{"at": "2026-12-01T14:00:00Z", "price": "1.00", "why": "open"},
            {"at": "2026-12-01T15:30:00Z", "price": "1.50", "why": "exit-policy"},
            {"at": "2026-12-01T16:00:00Z", "price": "1.50", "why": "now"}]
    values = [(point["time"], point["value"]) for point in _step_points(path, start, end)]
    assert values == [(start, 1.0), (start + 1800, 1.5), (end, 1.5)]

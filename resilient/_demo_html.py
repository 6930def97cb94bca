"""``resilient demo --html``: the summary as one self-contained page. Strictly private.

The page has no external assets: styles inline, and the latency chart an inline SVG of
both runs' latency percentiles, on an axis that spreads the tail as HdrHistogram's plots
do (0%, 90%, 99%, 99.9% equally spaced), since the tail is where the runs differ.
"""

from __future__ import annotations

import html
import math

from resilient._demo_report import Summary, percentile, table

_WIDTH, _HEIGHT, _PAD = 720, 320, 56
_COLOURS = ("#c0392b", "#2471a3")  # without, with
_TAIL = 3.0  # the axis ends at 99.9%: 1 - 10**-3


def _x(share: float) -> float:
    # -log10(1 - p): 0 at 0%, 1 at 90%, 2 at 99%, 3 at 99.9%.
    depth = min(_TAIL, -math.log10(max(1e-9, 1 - share)))
    return _PAD + depth / _TAIL * (_WIDTH - 2 * _PAD)


def _shares() -> list[float]:
    return [1 - 10 ** (-_TAIL * step / 120) for step in range(121)]


def chart(runs: tuple[Summary, Summary]) -> str:
    """An SVG of the runs' latency (ms) at each percentile."""
    curves = [[(s, percentile(list(run.latencies), s) * 1e3) for s in _shares()]
              for run in runs]  # fmt: skip
    top = max([ms for curve in curves for _, ms in curve] + [1.0]) * 1.05
    plot = _HEIGHT - 2 * _PAD

    def y(ms: float) -> float:
        return _HEIGHT - _PAD - ms / top * plot

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="latency by percentile">',
        f'<line x1="{_PAD}" y1="{_HEIGHT - _PAD}" x2="{_WIDTH - _PAD}" '
        f'y2="{_HEIGHT - _PAD}" stroke="#444"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_HEIGHT - _PAD}" stroke="#444"/>',
    ]
    for label, share in (("0%", 0.0), ("50%", 0.5), ("90%", 0.9), ("99%", 0.99),
                         ("99.9%", 0.999)):  # fmt: skip
        x = _x(share)
        parts.append(f'<line x1="{x:.1f}" y1="{_PAD}" x2="{x:.1f}" y2="{_HEIGHT - _PAD}" '
                     f'stroke="#ddd"/><text x="{x:.1f}" y="{_HEIGHT - _PAD + 18}" '
                     f'text-anchor="middle">{label}</text>')  # fmt: skip
    for step in range(5):
        ms = top * step / 4
        parts.append(f'<text x="{_PAD - 6}" y="{y(ms) + 4:.1f}" text-anchor="end">'
                     f"{ms:.0f}</text>")  # fmt: skip
    parts.append(f'<text x="14" y="{_HEIGHT / 2}" transform="rotate(-90 14 {_HEIGHT / 2})" '
                 'text-anchor="middle">latency (ms)</text>')  # fmt: skip
    for n, (run, curve) in enumerate(zip(runs, curves, strict=True)):
        points = " ".join(f"{_x(share):.1f},{y(ms):.1f}" for share, ms in curve)
        parts.append(f'<polyline fill="none" stroke="{_COLOURS[n]}" stroke-width="2" '
                     f'points="{points}"/>')  # fmt: skip
        parts.append(f'<text x="{_PAD + 10}" y="{_PAD + 16 + 18 * n}" '
                     f'fill="{_COLOURS[n]}">{html.escape(run.label)}</text>')  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts)


def page(runs: tuple[Summary, Summary], heading: str) -> str:
    """The whole report: heading, the table of figures, the chart."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>resilient demo</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
pre {{ background: #f6f6f6; padding: 1em; }}
svg text {{ font-size: 12px; font-family: system-ui, sans-serif; }}
</style>
</head>
<body>
<h1>resilient demo</h1>
<p>{html.escape(heading)}</p>
<pre>{html.escape(table(*runs))}</pre>
<h2>Latency by percentile</h2>
{chart(runs)}
</body>
</html>
"""

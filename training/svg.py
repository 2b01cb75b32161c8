"""Tiny inline-SVG charts for the evaluation report (no plotting library in the container)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

W, H = 420, 300
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 28, 40
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _frame(title: str, xlabel: str, ylabel: str, body: str, legend: Sequence[str] = ()) -> str:
    items = "".join(
        f'<rect x="{LEFT + 8}" y="{TOP + 6 + 16 * i}" width="10" height="10" '
        f'fill="{COLORS[i % 6]}"/>'
        f'<text x="{LEFT + 22}" y="{TOP + 15 + 16 * i}" font-size="11">{escape(name)}</text>'
        for i, name in enumerate(legend)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif">'
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>'
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
        f'fill="none" stroke="#999"/>'
        f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" font-size="11">{escape(xlabel)}</text>'
        f'<text x="12" y="{H / 2}" text-anchor="middle" font-size="11" '
        f'transform="rotate(-90 12 {H / 2})">{escape(ylabel)}</text>'
        f"{body}{items}</svg>"
    )


class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        self.lo, self.span, self.a, self.b = lo, (hi - lo) or 1.0, a, b

    def __call__(self, v: np.ndarray | Sequence[float] | float) -> np.ndarray:
        return self.a + (np.asarray(v, dtype=np.float64) - self.lo) / self.span * (self.b - self.a)


def _axes(x: _Scale, y: _Scale, xr: tuple[float, float], yr: tuple[float, float]) -> str:
    out = []
    for v in np.linspace(*xr, 5):
        out.append(
            f'<text x="{x(v):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" '
            f'font-size="10">{v:.3g}</text>'
        )
    for v in np.linspace(*yr, 5):
        out.append(
            f'<text x="{LEFT - 4}" y="{y(v) + 3:.1f}" text-anchor="end" '
            f'font-size="10">{v:.3g}</text>'
        )
    return "".join(out)


def _path(xs: np.ndarray, ys: np.ndarray, color: str, width: float = 1.6) -> str:
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
    return f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"/>'


def _thin(xs: np.ndarray, ys: np.ndarray, limit: int = 400) -> tuple[np.ndarray, np.ndarray]:
    if xs.size <= limit:
        return xs, ys
    idx = np.unique(np.linspace(0, xs.size - 1, limit).astype(int))
    return xs[idx], ys[idx]


def line_chart(
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
) -> str:
    """Curves on [0, 1] x [0, 1] (ROC, precision-recall)."""
    x, y = _Scale(0, 1, LEFT, W - RIGHT), _Scale(0, 1, H - BOTTOM, TOP)
    body = _axes(x, y, (0, 1), (0, 1))
    if diagonal:
        body += _path(x(np.array([0, 1])), y(np.array([0, 1])), "#bbb", 1)
    for i, (_, xs, ys) in enumerate(series):
        tx, ty = _thin(np.asarray(xs), np.asarray(ys))
        body += _path(x(tx), y(ty), COLORS[i % 6])
    return _frame(title, xlabel, ylabel, body, [s[0] for s in series])


def histogram(
    series: Sequence[tuple[str, np.ndarray]],
    *,
    title: str,
    xlabel: str,
    bins: int = 30,
) -> str:
    """Overlaid step histograms (share of each series' rows per bin)."""
    data = [np.asarray(v, dtype=np.float64) for _, v in series]
    data = [d[~np.isnan(d)] for d in data]
    allv = np.concatenate(data) if data else np.zeros(1)
    lo, hi = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    shares = [np.histogram(d, edges)[0] / max(d.size, 1) for d in data]
    top = max((float(s.max()) for s in shares if s.size), default=1.0) or 1.0
    x, y = _Scale(lo, hi, LEFT, W - RIGHT), _Scale(0, top, H - BOTTOM, TOP)
    body = _axes(x, y, (lo, hi), (0, top))
    for i, share in enumerate(shares):
        xs = np.repeat(edges, 2)[1:-1]
        body += _path(x(xs), y(np.repeat(share, 2)), COLORS[i % 6])
    return _frame(title, xlabel, "share of rows", body, [s[0] for s in series])


def scatter(xv: np.ndarray, yv: np.ndarray, *, title: str, xlabel: str, ylabel: str) -> str:
    """Points (sampled to 1,500) with the y = x line."""
    xv, yv = np.asarray(xv, dtype=np.float64), np.asarray(yv, dtype=np.float64)
    if xv.size > 1500:
        idx = np.random.default_rng(0).choice(xv.size, 1500, replace=False)
        xv, yv = xv[idx], yv[idx]
    lo = float(min(xv.min(), yv.min())) if xv.size else 0.0
    hi = float(max(xv.max(), yv.max())) if xv.size else 1.0
    hi = hi if hi > lo else lo + 1
    x, y = _Scale(lo, hi, LEFT, W - RIGHT), _Scale(lo, hi, H - BOTTOM, TOP)
    body = _axes(x, y, (lo, hi), (lo, hi)) + _path(x([lo, hi]), y([lo, hi]), "#bbb", 1)
    body += "".join(
        f'<circle cx="{a:.1f}" cy="{b:.1f}" r="1.6" fill="{COLORS[0]}" fill-opacity="0.4"/>'
        for a, b in zip(x(xv), y(yv), strict=True)
    )
    return _frame(title, xlabel, ylabel, body)


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str) -> str:
    """Horizontal bars, largest first (feature importance)."""
    order = np.argsort(-np.asarray(values, dtype=np.float64))[:20]
    top = max((float(values[i]) for i in order), default=1.0) or 1.0
    row = 18
    height = TOP + row * len(order) + 10
    label_w = 150
    body = []
    for k, i in enumerate(order):
        yk = TOP + row * k
        width = (W - label_w - 60) * float(values[i]) / top
        body.append(
            f'<text x="{label_w - 6}" y="{yk + 12}" text-anchor="end" font-size="11">'
            f"{escape(str(labels[i]))}</text>"
            f'<rect x="{label_w}" y="{yk + 2}" width="{width:.1f}" height="{row - 5}" '
            f'fill="{COLORS[0]}"/>'
            f'<text x="{label_w + width + 4:.1f}" y="{yk + 12}" font-size="10">'
            f"{float(values[i]):.3g}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
        f'font-family="sans-serif"><text x="{W / 2}" y="16" text-anchor="middle" '
        f'font-size="13">{escape(title)}</text>{"".join(body)}</svg>'
    )

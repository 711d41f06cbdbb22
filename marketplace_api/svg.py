"""The loss curve as inline SVG, drawn on the server: no JavaScript, no chart library."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / count
    return [low + i * step for i in range(count + 1)]


def loss_curve(
    points: Sequence[tuple[int, float]],
    *,
    width: int = 640,
    height: int = 260,
    title: str = "validation loss after each round",
) -> Markup:
    """A line chart of ``(round, loss)`` points: axes, ticks, one marker and label per point."""
    left, right, top, bottom = 64, 20, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" data-points="{len(points)}">'
        f"<title>{escape(title)}</title>"
    )
    if not points:
        text = (
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#5b6475">'
            "no round aggregated yet</text>"
        )
        return Markup(head + text + "</svg>")
    rounds = [r for r, _ in points]
    losses = [loss for _, loss in points]
    low, high = min(losses), max(losses)
    pad = (high - low) * 0.1 or max(abs(high) * 0.1, 1e-3)
    low, high = low - pad, high + pad
    first, last = min(rounds), max(rounds)
    span = max(1, last - first)

    def x(r: int) -> float:
        return left + (r - first) / span * plot_w if last > first else left + plot_w / 2

    def y(v: float) -> float:
        return top + (high - v) / (high - low) * plot_h

    parts = [head]
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#5b6475"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#5b6475"/>'
    )
    for tick in _ticks(low, high):
        ty = y(tick)
        parts.append(
            f'<line x1="{left}" y1="{ty:.1f}" x2="{left + plot_w}" y2="{ty:.1f}" '
            'stroke="#e3e7ee"/>'
            f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5b6475">{tick:.4g}</text>'
        )
    for r in sorted(set(rounds)):
        parts.append(
            f'<text x="{x(r):.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11" '
            f'fill="#5b6475">{r}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" font-size="12" '
        'fill="#5b6475">round</text>'
    )
    if len(points) > 1:
        path = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#2857c5" stroke-width="2"/>')
    for r, v in points:
        parts.append(
            f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="4" fill="#2857c5" '
            f'data-round="{r}" data-loss="{v!r}"><title>round {r}: {v:.6f}</title></circle>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))

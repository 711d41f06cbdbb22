"""The audit report: checks and findings, written as JSON and as a self-contained HTML page."""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Check:
    subject: str
    name: str
    ok: bool
    detail: str = ""


@dataclass
class AuditReport:
    subject: str
    checks: list[Check] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    verifier_seconds: float = 0.0
    segments_checked: int = 0
    segments_total: int = 0

    @property
    def findings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, subject: str, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(subject, name, ok, detail))
        return ok

    @property
    def compute_share(self) -> float:
        """Re-executed steps as a share of the training steps they vouch for."""
        return self.segments_checked / self.segments_total if self.segments_total else 0.0

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "subject": self.subject,
            "findings": len(self.findings),
            "checks": [asdict(c) for c in self.checks],
            "losses": self.losses,
            "verifier_compute_share": self.compute_share,
            "segments_checked": self.segments_checked,
            "segments_total": self.segments_total,
            "recompute_seconds": self.verifier_seconds,
        }
        return json.dumps(doc, indent=2)


def write_report(report: AuditReport, folder: Path) -> tuple[Path, Path]:
    """Write ``audit.json`` and ``audit.html`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "audit.json", folder / "audit.html"
    json_path.write_text(report.to_json())
    html_path.write_text(render_html(report))
    return json_path, html_path


def loss_curve_svg(losses: list[float], width: int = 480, height: int = 200) -> str:
    if len(losses) < 2:
        return "<p>no loss curve yet</p>"
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    pad = 30
    points = " ".join(
        f"{pad + i * (width - 2 * pad) / (len(losses) - 1):.1f},"
        f"{height - pad - (x - lo) / span * (height - 2 * pad):.1f}"
        for i, x in enumerate(losses)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="validation loss by round">'
        f'<rect width="100%" height="100%" fill="white" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{points}"/>'
        f'<text x="{pad}" y="18" font-size="12">loss {hi:.4f} → {losses[-1]:.4f} '
        f"over {len(losses) - 1} rounds</text></svg>"
    )


def render_html(report: AuditReport) -> str:
    rows = "".join(
        f"<tr class={'ok' if c.ok else 'finding'}><td>{html.escape(c.subject)}</td>"
        f"<td>{html.escape(c.name)}</td><td>{'ok' if c.ok else 'FINDING'}</td>"
        f"<td>{html.escape(c.detail)}</td></tr>"
        for c in report.checks
    )
    verdict = "no findings" if not report.findings else f"{len(report.findings)} finding(s)"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>OpenTrain audit: {html.escape(report.subject)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 8px}"
        ".finding{background:#fdd}.ok{background:#efe}</style></head><body>"
        f"<h1>Audit of {html.escape(report.subject)}: {verdict}</h1>"
        f"<p>Re-executed {report.segments_checked} of {report.segments_total} segments "
        f"({report.compute_share:.1%} of the training compute they vouch for), "
        f"{report.verifier_seconds:.2f} s.</p>"
        f"{loss_curve_svg(report.losses)}"
        "<table><tr><th>subject</th><th>check</th><th>result</th><th>detail</th></tr>"
        f"{rows}</table></body></html>"
    )

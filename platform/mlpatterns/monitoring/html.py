"""Self-contained HTML pages for the reports: plots drawn by matplotlib as inline SVG
(text as outlines, so a page looks the same without its fonts), tables and CSS, no
script or font fetched from anywhere, so a page opens offline and can be mailed.

Every page opens with what it covers (service, phase, time range, each version's
model and digest). A small inline script records on <body> how many plots the
browser laid out and how many text boxes fall outside their plot or overlap one
another (`data-plots-rendered`, `data-text-overflows`), which the tests read from
headless Chromium."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from mlpatterns.monitoring.coverage import Coverage
from mlpatterns.monitoring.reports import ABReport, Latency, ShadowReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CHECK_LAYOUT",
    "COLOURS",
    "NO_METADATA",
    "QUANTILES",
    "STYLE",
    "ab_page",
    "coverage_html",
    "heatmap_svg",
    "latency_svg",
    "rates_svg",
    "shadow_page",
]

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:62rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccd;padding:.3rem .6rem}
th{background:#eef;text-align:left}.plot{display:block;margin:1rem 0;max-width:100%;height:auto}
.big{font-size:1.4rem;font-weight:600}.covers td:first-child{font-weight:600}
code{font-size:.9em}
"""

CHECK_LAYOUT = """<script>
window.addEventListener("load", () => {
  const inside = (box, frame) => box.left >= frame.left - 0.5 && box.right <= frame.right + 0.5
    && box.top >= frame.top - 0.5 && box.bottom <= frame.bottom + 0.5;
  const meets = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5
    && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  let drawn = 0, overflows = 0;
  for (const svg of document.querySelectorAll("svg.plot")) {
    const frame = svg.getBoundingClientRect();
    if (frame.width > 0 && frame.height > 0 && svg.querySelector("path")) drawn += 1;
    const boxes = [...svg.querySelectorAll('g[id^="text_"]')]
      .map((text) => text.getBoundingClientRect()).filter((box) => box.width > 0);
    overflows += boxes.filter((box) => !inside(box, frame)).length;
    boxes.forEach((a, i) => {
      overflows += boxes.slice(i + 1).filter((b) => meets(a, b)).length;
    });
  }
  document.body.dataset.plotsRendered = String(drawn);
  document.body.dataset.textOverflows = String(overflows);
});
</script>"""

QUANTILES = (0.5, 0.9, 0.99)
# no creator, date or RDF block: the page says what it covers, and the plot is the same
# for the same numbers
NO_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}
COLOURS = ("#3b6fd8", "#e07b39", "#3aa05b", "#b54fb5", "#7f7f7f", "#c8a400")


def _svg(figure: Figure) -> str:
    """The figure as inline SVG with class "plot", deterministic (no date, fixed ids)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "mlpatterns", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata=NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :].replace("<svg ", '<svg class="plot" ', 1)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _page(title: str, coverage: Coverage, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
        f"</title><style>{STYLE}</style></head><body data-plots-rendered=0>"
        f"<h1>{escape(title)}</h1>{coverage_html(coverage)}{body}{CHECK_LAYOUT}</body></html>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], css: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    kind = f' class="{css}"' if css else ""
    return f"<table{kind}><tr>{head}</tr>{body}</table>"


def coverage_html(coverage: Coverage) -> str:
    """What the page covers, as a table: service, phase, records, versions."""
    rows: list[tuple[str, str]] = [
        ("service", coverage.service),
        ("phase", coverage.phase or "(not recorded)"),
        ("records", coverage.window),
    ]
    for served in coverage.versions:
        model = served.model or "unknown"
        digest = f"sha256 {served.digest}" if served.digest else "digest not recorded"
        rows.append((f"version {served.name}", f"model {model}, {digest}"))
    return _table(("covers", ""), rows, "covers")


def heatmap_svg(classes: Sequence[str], cells: dict[tuple[str, str], int]) -> str:
    """The primary-vs-shadow confusion matrix: counts in cells, shaded by share."""
    n = len(classes)
    if n == 0:
        return "<p>No paired predictions.</p>"
    figure = _figure(1.6 + 0.9 * n, 1.2 + 0.8 * n)
    axes = figure.add_subplot()
    counts = [[cells.get((row, column), 0) for column in classes] for row in classes]
    peak = max(max(row) for row in counts) or 1
    axes.imshow(counts, cmap="Blues", vmin=0, vmax=peak)
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            dark = count > 0.6 * peak
            axes.text(j, i, f"{count}", ha="center", va="center", color="white" if dark else "k")
    axes.set_xticks(range(n), classes, rotation=30, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(n), classes)
    axes.set_xlabel("shadow")
    axes.set_ylabel("primary")
    axes.tick_params(length=0)
    return _svg(figure)


def latency_svg(series: dict[str, Latency]) -> str:
    """Each series' latency as an ECDF on a log axis, its p50, p90 and p99 marked on
    the curve and named on the right-hand axis."""
    present = {name: lat for name, lat in series.items() if lat.values}
    if not present:
        return "<p>No latencies recorded.</p>"
    figure = _figure(6.4, 3.4)
    axes = figure.add_subplot()
    for colour, (name, lat) in zip(COLOURS, present.items(), strict=False):
        values = sorted(max(v * 1e3, 1e-4) for v in lat.values)
        shares = [(i + 1) / len(values) for i in range(len(values))]
        axes.step(values, shares, where="post", color=colour, label=name)
        marks = [max(q * 1e3, 1e-4) for q in (lat.p50, lat.p90, lat.p99)]
        axes.plot(marks, QUANTILES, "o", color=colour, markersize=4)
    axes.set_xscale("log")
    plain = _plain_number
    axes.xaxis.set_major_formatter(plain)
    axes.xaxis.set_minor_formatter(plain)
    axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("share of requests")
    named = axes.secondary_yaxis("right")
    named.set_yticks(QUANTILES, ["p50", "p90", "p99"])
    named.tick_params(labelsize=8)
    for share in QUANTILES:
        axes.axhline(share, color="#999", linewidth=0.6, linestyle=":")
    axes.grid(True, which="major", axis="x", alpha=0.3)
    axes.legend(loc="center right")
    return _svg(figure)


def _plain_number(value: float, _position: object) -> str:
    """A log axis' tick as a plain number (0.2, not 2x10^-1); every other minor tick
    is left unlabelled where they would crowd."""
    digits = f"{value:.1g}"
    return "" if digits.lstrip("0.")[:1] in ("7", "9") else f"{float(digits):g}"


def rates_svg(report: ABReport) -> str:
    """Each version's success rate with its 95% interval, on an axis fitted to the
    intervals (not from 0), the control's rate as a reference line."""
    versions = [v for v in report.versions if v.outcomes]
    if not versions:
        return "<p>No outcomes recorded.</p>"
    figure = _figure(6.4, 1.0 + 0.6 * len(versions))
    axes = figure.add_subplot()
    lows = [v.interval[0] for v in versions]
    highs = [v.interval[1] for v in versions]
    span = max(highs) - min(lows) or 0.1
    left, right = max(0.0, min(lows) - 0.08 * span), min(1.0, max(highs) + 0.3 * span)
    for y, (colour, version) in enumerate(zip(COLOURS * 4, versions, strict=False)):
        low, high = version.interval
        axes.errorbar(
            [version.rate],
            [y],
            xerr=[[version.rate - low], [high - version.rate]],
            fmt="o",
            color=colour,
            capsize=4,
        )
        axes.annotate(
            f"{version.rate:.1%} ({version.successes}/{version.outcomes})",
            (high, y),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
        )
        if version.name == report.control:
            axes.axvline(version.rate, color=colour, linestyle=":", linewidth=1)
    axes.set_yticks(range(len(versions)), [v.name for v in versions])
    axes.set_ylim(-0.6, len(versions) - 0.4)
    axes.invert_yaxis()
    axes.set_xlim(left, right)
    axes.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}" if span > 0.2 else f"{x:.1%}")
    axes.set_xlabel(f"success rate, 95% Wilson interval; dotted: control {report.control}")
    axes.grid(True, axis="x", alpha=0.3)
    return _svg(figure)


def _ms(value: float) -> str:
    return f"{value * 1e3:.3f}" if math.isfinite(value) else "-"


def shadow_page(report: ShadowReport) -> str:
    summary = (
        f'<p class="big">Agreement {report.agreement:.1%} over {report.rows} rows '
        f"({report.pairs} requests)</p>"
    )
    latency = _table(
        ("", "count", "p50 ms", "p90 ms", "p99 ms"),
        [
            (name, lat.count, _ms(lat.p50), _ms(lat.p90), _ms(lat.p99))
            for name, lat in (
                ("primary", report.primary_latency),
                ("shadow", report.shadow_latency),
            )
        ],
    )
    examples = _table(
        ("request id", "input", "primary", "shadow"),
        [(m.request_id, m.inputs, m.primary, m.shadow) for m in report.mismatches],
    )
    body = (
        summary
        + "<h2>Primary (rows) vs shadow (columns)</h2>"
        + heatmap_svg(report.classes, report.confusion)
        + "<h2>Model latency</h2>"
        + latency
        + latency_svg({"primary": report.primary_latency, "shadow": report.shadow_latency})
        + "<h2>Disagreements (first few)</h2>"
        + examples
    )
    return _page(f"Shadow report: {report.service}", report.coverage, body)


def ab_page(report: ABReport) -> str:
    versions = _table(
        ("version", "requests", "outcomes", "successes", "rate", "95% interval"),
        [
            (
                v.name,
                v.requests,
                v.outcomes,
                v.successes,
                f"{v.rate:.1%}",
                f"{v.interval[0]:.1%} to {v.interval[1]:.1%}",
            )
            for v in report.versions
        ],
    )
    tests = _table(
        ("challenger", f"difference vs {report.control}", "p-value"),
        [(c.challenger, f"{c.difference:+.1%}", f"{c.p_value:.3g}") for c in report.comparisons],
    )
    body = (
        f'<p class="big">{escape(report.recommendation)}</p>{versions}'
        f"<h2>Success rates</h2>{rates_svg(report)}"
        f"<h2>Test</h2><p>{escape(report.test)}</p>{tests}"
    )
    return _page(f"Online A/B report: {report.service}", report.coverage, body)

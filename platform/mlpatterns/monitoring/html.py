"""Self-contained HTML pages for the reports: inline SVG plots and CSS, no scripts or
fonts fetched from anywhere, so a page opens offline and can be mailed around.
A small inline script counts the plots the browser laid out (`data-plots-rendered`
on <body>), which the tests read from headless Chromium."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from mlpatterns.monitoring.reports import ABReport, ShadowReport

__all__ = [
    "COLOURS",
    "COUNT_PLOTS",
    "STYLE",
    "ab_page",
    "heatmap_svg",
    "histogram_svg",
    "rates_svg",
    "shadow_page",
]

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:60rem}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccd;padding:.3rem .6rem}
th{background:#eef}.plot{margin:1rem 0}.big{font-size:1.4rem;font-weight:600}
"""

COUNT_PLOTS = """<script>
window.addEventListener("load", () => {
  const drawn = [...document.querySelectorAll("svg.plot")].filter((svg) => {
    const box = svg.getBBox();
    return box.width > 0 && box.height > 0 && svg.querySelectorAll("rect,line").length > 0;
  });
  document.body.dataset.plotsRendered = String(drawn.length);
});
</script>"""

COLOURS = ("#3b6fd8", "#e07b39", "#3aa05b", "#b54fb5")


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}"
        f"</title><style>{STYLE}</style></head><body data-plots-rendered=0>"
        f"<h1>{escape(title)}</h1>{body}{COUNT_PLOTS}</body></html>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def histogram_svg(series: dict[str, Sequence[float]], bins: int = 30, unit: float = 1e3) -> str:
    """Overlaid histograms (values scaled by `unit`, milliseconds by default)."""
    values = [v * unit for vs in series.values() for v in vs]
    width, height, pad = 640, 220, 30
    if not values:
        return "<p>No latencies recorded.</p>"
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    counts = {}
    for name, vs in series.items():
        bucket = [0] * bins
        for v in vs:
            bucket[min(bins - 1, int((v * unit - low) / span * bins))] += 1
        counts[name] = bucket
    peak = max(max(c) for c in counts.values()) or 1
    bar = (width - 2 * pad) / bins
    shapes = []
    for colour, (name, bucket) in zip(COLOURS, counts.items(), strict=False):
        for i, count in enumerate(bucket):
            h = (height - 2 * pad) * count / peak
            shapes.append(
                f'<rect x="{pad + i * bar:.1f}" y="{height - pad - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"><title>{escape(name)}: '
                f"{count}</title></rect>"
            )
    legend = "".join(
        f'<text x="{pad + 160 * i}" y="16" fill="{c}">{escape(name)}</text>'
        for i, (c, name) in enumerate(zip(COLOURS, series, strict=False))
    )
    axis = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#333"/><text x="{pad}" y="{height - 8}">{low:.2f} ms</text>'
        f'<text x="{width - pad - 60}" y="{height - 8}">{high:.2f} ms</text>'
    )
    return (
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">{legend}{"".join(shapes)}{axis}</svg>'
    )


def heatmap_svg(classes: Sequence[str], cells: dict[tuple[str, str], int]) -> str:
    size, pad = 56, 110
    n = len(classes)
    if n == 0:
        return "<p>No paired predictions.</p>"
    peak = max(cells.values()) or 1
    parts = []
    for i, row in enumerate(classes):
        parts.append(f'<text x="4" y="{pad + i * size + size / 2}">{escape(row)}</text>')
        parts.append(
            f'<text x="{pad + i * size + 4}" y="{pad - 10}" font-size="12">{escape(row)}</text>'
        )
        for j, column in enumerate(classes):
            count = cells.get((row, column), 0)
            shade = 0.08 + 0.9 * count / peak
            parts.append(
                f'<rect x="{pad + j * size}" y="{pad + i * size}" width="{size - 2}" '
                f'height="{size - 2}" fill="#3b6fd8" fill-opacity="{shade:.2f}"/>'
                f'<text x="{pad + j * size + 8}" y="{pad + i * size + size / 2}">{count}</text>'
            )
    side = pad + n * size + 10
    return (
        f'<svg class="plot" width="{side}" height="{side}" viewBox="0 0 {side} {side}" '
        f'xmlns="http://www.w3.org/2000/svg"><text x="{pad}" y="14">shadow (columns) vs '
        f"primary (rows)</text>{''.join(parts)}</svg>"
    )


def rates_svg(report: ABReport) -> str:
    width, row, pad = 640, 46, 120
    height = pad // 2 + row * len(report.versions)
    scale = width - pad - 40
    parts = []
    for i, (version, colour) in enumerate(zip(report.versions, COLOURS * 8, strict=False)):
        y = 20 + i * row
        low, high = version.interval
        parts.append(
            f'<text x="4" y="{y + 18}">{escape(version.name)}</text>'
            f'<rect x="{pad}" y="{y}" width="{max(1.0, scale * version.rate):.1f}" height="24" '
            f'fill="{colour}"/><line x1="{pad + scale * low:.1f}" y1="{y + 12}" '
            f'x2="{pad + scale * high:.1f}" y2="{y + 12}" stroke="#111" stroke-width="2"/>'
            f'<text x="{pad + scale * high + 6:.1f}" y="{y + 18}">{version.rate:.1%}</text>'
        )
    return (
        f'<svg class="plot" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def shadow_page(report: ShadowReport) -> str:
    summary = (
        f'<p class="big">Agreement {report.agreement:.1%} over {report.rows} rows '
        f"({report.pairs} requests)</p><p>Primary: {escape(', '.join(report.primary_versions))}"
        f" · shadow: {escape(', '.join(report.shadow_versions))}</p>"
    )
    latency = _table(
        ("", "count", "p50 ms", "p90 ms", "p99 ms"),
        [
            (
                name,
                lat.count,
                f"{lat.p50 * 1e3:.3f}",
                f"{lat.p90 * 1e3:.3f}",
                f"{lat.p99 * 1e3:.3f}",
            )
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
        + "<h2>Primary vs shadow</h2>"
        + heatmap_svg(report.classes, report.confusion)
        + "<h2>Model latency</h2>"
        + latency
        + histogram_svg(
            {"primary": report.primary_latency.values, "shadow": report.shadow_latency.values}
        )
        + "<h2>Disagreements</h2>"
        + examples
    )
    return _page(f"Shadow report: {report.service}", body)


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
        f"<h2>Success rate (bar) and 95% interval (line)</h2>{rates_svg(report)}"
        f"<h2>Test</h2><p>{escape(report.test)}</p>{tests}"
    )
    return _page(f"Online A/B report: {report.service}", body)

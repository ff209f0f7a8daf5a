"""The prediction-monitoring page (`mlpatterns monitor --html`): per version, each
feature's live distribution drawn over its training histogram, the predicted-class
mix beside training's, and the figures, in one self-contained HTML file."""

from __future__ import annotations

import itertools
import math
from html import escape

from mlpatterns.drift import FeatureDrift
from mlpatterns.monitoring.html import COLOURS, _figure, _page, _svg, _table
from mlpatterns.monitoring.monitor import MonitorReport, VersionDrift, verdict

__all__ = ["class_mix_svg", "features_svg", "monitor_page"]

TRAINING = "#b8bfd0"


def features_svg(features: tuple[FeatureDrift, ...]) -> str:
    """Small multiples: per feature, training's share per bin (grey bars) and live's
    (a line), the open bins beyond training's range drawn one bin wide either side."""
    drawn = [f for f in features if f.edges and f.live]
    if not drawn:
        return "<p>No inputs to compare.</p>"
    columns = min(2, len(drawn))
    rows = math.ceil(len(drawn) / columns)
    figure = _figure(6.4, 2.3 * rows)
    for index, feature in enumerate(drawn, start=1):
        axes = figure.add_subplot(rows, columns, index)
        edges = list(feature.edges)
        width = (edges[-1] - edges[0]) / max(1, len(edges) - 1)
        outer = [edges[0] - width, *edges, edges[-1] + width]  # the two open bins
        middles = [(a + b) / 2 for a, b in itertools.pairwise(outer)]
        training = [0.0, *feature.training, 0.0]
        axes.bar(middles, training, width=width, color=TRAINING, label="training")
        axes.step(middles, feature.live, where="mid", color=COLOURS[0], label="live")
        reading = verdict(feature.psi, feature.p_value)
        axes.set_title(f"{feature.name}: PSI {feature.psi:.2f} ({reading})", fontsize=9)
        axes.tick_params(labelsize=7)
        if index == 1:
            axes.legend(fontsize=7)
    return _svg(figure)


def class_mix_svg(drift: VersionDrift) -> str:
    """The predicted classes' shares beside training's."""
    classes = sorted(set(drift.training_classes) | set(drift.live_classes))
    total = sum(drift.live_classes.values())
    if not classes or total == 0:
        return "<p>No predicted classes recorded.</p>"
    figure = _figure(6.4, 2.2)
    axes = figure.add_subplot()
    places = range(len(classes))
    live = [drift.live_classes.get(c, 0) / total for c in classes]
    trained = [drift.training_classes.get(c, 0.0) for c in classes]
    axes.bar([p - 0.2 for p in places], trained, width=0.4, color=TRAINING, label="training")
    axes.bar([p + 0.2 for p in places], live, width=0.4, color=COLOURS[0], label="predicted")
    axes.set_xticks(list(places), classes)
    axes.set_ylabel("share")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(figure)


def _version(drift: VersionDrift) -> str:
    mix = "-" if drift.class_psi is None else f"{drift.class_psi:.3f} ({verdict(drift.class_psi)})"
    head = (
        f"<h2>Version {escape(drift.version)}</h2><p>{drift.requests} requests, "
        f"{drift.rows} rows; class mix PSI {mix}; repeated inputs {drift.repeated:.1%}</p>"
    )
    if drift.note:
        head += f"<p>{escape(drift.note)}</p>"
    table = _table(
        ("feature", "PSI", "KS", "p", "reading"),
        [
            (f.name, f"{f.psi:.3f}", f"{f.ks:.3f}", f"{f.p_value:.2g}", verdict(f.psi, f.p_value))
            for f in drift.features
        ],
    )
    return head + features_svg(drift.features) + class_mix_svg(drift) + table


def monitor_page(report: MonitorReport) -> str:
    body = "".join(_version(drift) for drift in report.versions)
    return _page(
        f"Prediction monitoring: {report.coverage.service}",
        report.coverage,
        body or "<p>No prediction records in this window.</p>",
    )

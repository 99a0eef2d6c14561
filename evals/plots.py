"""The scorecard's plots: RUN_DIR/plots/metrics.png, confusion.png and cost.png.

Drawn on matplotlib Figures with the Agg canvas, not pyplot, so no display and no global pyplot state are needed
(the eval runs headless, and a CLI process may draw several scorecards). A plot with no data is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medconsult.evals.scorecard import CLASS_METRICS, SHARE_METRICS

COST_METRICS = ("wall_s", "prompt_tokens", "completion_tokens")
REFERENCE_MARKERS = {"majority": "s", "constant_ranking": "D"}


def write_plots(scorecard: dict[str, Any], run_dir: Path) -> list[Path]:
    """Draw the plots that have data into RUN_DIR/plots; the paths written, in a fixed order."""
    drawers = {"metrics.png": _metrics_figure, "confusion.png": _confusion_figure, "cost.png": _cost_figure}
    written = []
    for name, draw in drawers.items():
        figure = draw(scorecard)
        if figure is None:
            continue
        path = run_dir / "plots" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(figure)  # attaches the Agg canvas: savefig renders without a display
        figure.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)
    return written


def _metrics_figure(scorecard: dict[str, Any]) -> Figure | None:
    """Each share metric's mean with its 95% CI, and the reference predictors' top-1/top-3/balanced/macro-recall as
    markers."""
    metrics = scorecard.get("metrics") or {}
    names = [name for name in (*SHARE_METRICS, *CLASS_METRICS) if metrics.get(name)]
    if not names:
        return None
    means = np.array([metrics[name]["mean"] for name in names])
    lows, highs = (np.array([metrics[name]["ci95"][i] for name in names]) for i in (0, 1))
    figure = Figure(figsize=(max(6.0, 1.1 * len(names) + 2.5), 4.5), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(names))
    axes.bar(x, means, color="tab:blue", alpha=0.6, label="agent (mean, 95% CI)")
    axes.errorbar(x, means, yerr=[means - lows, highs - means], fmt="none", ecolor="black", capsize=4)
    _reference_markers(axes, scorecard.get("references"), names)
    axes.set_xticks(x, [f"{name} (n={metrics[name]['n']})" for name in names], rotation=30, ha="right", fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("share of cases")
    axes.set_title(f"Metrics: {scorecard.get('agent') or 'agent'}")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: bars reach 1
    return figure


def _reference_markers(axes: Any, references: dict[str, Any] | None, names: list[str]) -> None:
    for predictor, marker in REFERENCE_MARKERS.items():
        reference = (references or {}).get(predictor)
        keys = ("top1", "top3", *CLASS_METRICS)
        points = [(names.index(k), reference[k]) for k in keys if reference and k in names and k in reference]
        if points:
            xs, ys = zip(*points, strict=True)
            axes.scatter(xs, ys, marker=marker, color="tab:red" if predictor == "majority" else "tab:orange",
                         zorder=3, label=predictor)


def _confusion_figure(scorecard: dict[str, Any]) -> Figure | None:
    """Label class x predicted top-1 class heatmap, with the counts written in the cells."""
    confusion: dict[str, dict[str, int]] = scorecard.get("confusion") or {}
    if not confusion:
        return None
    labels = sorted(confusion)
    predicted = sorted({p for row in confusion.values() for p in row})
    counts = np.array([[confusion[label].get(p, 0) for p in predicted] for label in labels])
    figure = Figure(figsize=(1.2 * len(predicted) + 2.5, 0.8 * len(labels) + 1.8), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, label="cases")
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axes.text(j, i, str(count), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(predicted)), predicted, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted top-1 class")
    axes.set_ylabel("label class")
    axes.set_title("Etiology confusion")
    return figure


def _cost_figure(scorecard: dict[str, Any]) -> Figure | None:
    """Per-case distributions of wall time and tokens: one box plot with the cases as points per metric."""
    cases = scorecard.get("per_case") or []
    series = {name: [c[name] for c in cases if c.get(name) is not None] for name in COST_METRICS}
    series = {name: values for name, values in series.items() if values}
    if not series:
        return None
    figure = Figure(figsize=(3.2 * len(series), 3.8), layout="constrained")
    for index, (name, values) in enumerate(series.items(), start=1):
        axes = figure.add_subplot(1, len(series), index)
        axes.boxplot(values, widths=0.5, showfliers=False)
        jitter = np.random.default_rng(index).uniform(-0.12, 0.12, len(values))  # seeded: same plot every time
        axes.scatter(1 + jitter, values, s=12, alpha=0.6, color="tab:blue")
        axes.set_xticks([1], [f"{name} (n={len(values)})"])
        axes.set_ylim(0, 1.1 * max(values) or 1.0)  # from 0: the spread is read against the size
    figure.suptitle("Cost per case")
    return figure

"""Figures for cards: matplotlib rendered to SVG data URIs (image grids arrive as PNG in the results JSON).

Every figure is embedded in the page (``<img src="data:...">``), so a card is one self-contained file
and no figure can run script. Matplotlib escapes the text it writes into SVG, so hostile labels are
safe there too. Matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # fixed hash salt: SVG element ids, and so re-rendered cards, are byte-for-byte reproducible;
    # text.parse_math off: labels, class names and file names are data, drawn literally ('$x$' stays '$x$',
    # and '$\\frac{$' cannot make mathtext raise while a card is drawn)
    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "genaudit",
            "font.size": 9,
            "figure.dpi": 100,
            "text.parse_math": False,
        }
    )
    return plt


def svg_data_uri(fig: Any) -> str:
    """Serialise a matplotlib figure to an SVG data URI and close it."""
    import warnings

    plt = _pyplot()
    buf = io.BytesIO()
    with warnings.catch_warnings():  # text stays text in the SVG (fonttype none): the browser's fonts draw it
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heatmap(
    matrix: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    fmt: str = "{:.0f}",
) -> str:
    """An annotated heat map (e.g. a confusion matrix) as an SVG data URI."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(0.45 * len(col_labels) + 1.6, 0.4 * len(row_labels) + 1.2))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(col_labels)), labels=list(col_labels))
    ax.set_yticks(range(len(row_labels)), labels=list(row_labels))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    top = m.max() if m.size else 0
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7, color="white" if v > 0.6 * top else "black")
    return svg_data_uri(fig)


def bar_chart(
    labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str, ylim: tuple[float, float] | None = None
) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.0, 0.4 * len(labels) + 1.5), 2.6))
    ax.bar(range(len(labels)), values, color="#4a78b5")
    ax.set_xticks(range(len(labels)), labels=list(labels))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    return svg_data_uri(fig)


def line_chart(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    secondary: dict[str, Sequence[float]] | None = None,
    secondary_label: str = "",
) -> str:
    """Lines over a shared x axis; ``secondary`` series use a right-hand axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        ax2 = ax.twinx()
        for name, ys in secondary.items():
            ax2.plot(x, ys, marker="s", linestyle="--", color="#c0504d", label=name)
        ax2.set_ylabel(secondary_label)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, fontsize=7, loc="best")
    return svg_data_uri(fig)


Interval = tuple[float, float]


def tradeoff_chart(
    series: dict[str, list[tuple[float, float, Interval | None, Interval | None]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    highlight: Sequence[tuple[float, float]] = (),
    highlight_label: str = "",
    annotate: dict[str, list[str]] | None = None,
) -> str:
    """One line per series through its points ``(x, y, x_ci, y_ci)`` with 95% error bars, optional
    ringed points (e.g. the Pareto front) and point annotations (e.g. the guidance scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    markers = "os^vDP*Xh<>p"
    for k, (name, points) in enumerate(series.items()):
        if not points:
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        xerr = _error_bars([p[0] for p in points], [p[2] for p in points])
        yerr = _error_bars([p[1] for p in points], [p[3] for p in points])
        ax.errorbar(
            xs,
            ys,
            xerr=xerr,
            yerr=yerr,
            marker=markers[k % len(markers)],
            ms=4,
            lw=1.2,
            capsize=2,
            elinewidth=0.6,
            label=name,
        )
        for text, x, y in zip((annotate or {}).get(name, []), xs, ys, strict=False):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6, color="#555")
    if highlight:
        ax.scatter(
            [h[0] for h in highlight],
            [h[1] for h in highlight],
            s=110,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            label=highlight_label,
            zorder=5,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="best", ncol=2)
    return svg_data_uri(fig)


def _error_bars(values: list[float], cis: list[Interval | None]) -> Any:
    if all(ci is None for ci in cis):
        return None
    lower = [max(0.0, v - ci[0]) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    upper = [max(0.0, ci[1] - v) if ci else 0.0 for v, ci in zip(values, cis, strict=True)]
    return np.array([lower, upper])


def forest_plot(
    labels: Sequence[str], values: Sequence[float], cis: Sequence[Interval], *, title: str, xlabel: str
) -> str:
    """Differences with 95% intervals, one row each, and the zero line (no difference)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 0.22 * len(labels) + 1.0))
    ys = np.arange(len(labels))[::-1]
    lo = [v - c[0] for v, c in zip(values, cis, strict=True)]
    hi = [c[1] - v for v, c in zip(values, cis, strict=True)]
    colors = ["#2e7d32" if c[1] < 0 else "#c62828" if c[0] > 0 else "#555555" for c in cis]
    for y, v, below, above, col in zip(ys, values, lo, hi, colors, strict=True):
        ax.errorbar([v], [y], xerr=[[below], [above]], fmt="o", ms=3.5, capsize=2, color=col)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(ys, labels=list(labels), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return svg_data_uri(fig)


def step_curves(
    progress: Sequence[float],
    curves: dict[str, Sequence[float]],
    *,
    title: str,
    applied: dict[str, Sequence[float]] | None = None,
) -> str:
    """w(p) per schedule over sampling progress (0 = first, noisiest step), with the weights actually
    applied at each sampling step as markers."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    for name, ws in curves.items():
        (line,) = ax.plot(progress, ws, lw=1.3, label=name)
        steps = (applied or {}).get(name)
        if steps:
            ax.plot(np.linspace(0, 1, len(steps)), steps, ".", ms=3, color=line.get_color())
    ax.set_xlabel("sampling progress p (0 = first, noisiest step)")
    ax.set_ylabel("guidance weight w(p)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2)
    return svg_data_uri(fig)

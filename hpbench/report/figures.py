"""Report figures from tidy results rows: success-rate curves and per-joint errors.

Figures are plain ``matplotlib.figure.Figure`` objects drawn without pyplot: no
global figure registry, no switch of the caller's backend (a notebook keeps its
own), nothing to close; PDF and PNG are rendered by the non-interactive
backends. The look is seaborn's whitegrid/paper style as matplotlib ships it
(``seaborn-v0_8-*``), applied in a context manager, so no global rcParams change
either; importing seaborn itself would add ~1.4 s (it loads scipy.stats) to a
report that otherwise takes ~2.5 s on 2 cores.

With 20-30 methods a colour alone is not enough to tell lines apart: hues are
spread and interleaved, and line styles and markers cycle with other periods;
the legend sits outside the axes, in more columns and a larger figure as methods
are added. Files carry no dates or version stamps, so the same rows give
byte-identical PDFs and PNGs.

Several seeds of one method (a sweep) draw as one line or bar at their mean, the
curve with a light band of +- one sample standard deviation; one seed draws as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpbench._text import plural
from hpbench.report.names import display_name
from hpbench.report.tables import seed_statistics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["joint_error_figure", "method_styles", "save_figure", "success_rate_figure"]

PNG_DPI = 150
"""Resolution of PNG figures, dots per inch."""

_LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X")
_LEGEND_MAX_ROWS = 22
_STYLES = ("seaborn-v0_8-whitegrid", "seaborn-v0_8-paper")  # seaborn's styles as matplotlib ships them
_RC = {"pdf.fonttype": 42, "ps.fonttype": 42}  # TrueType, not Type 3: conference PDF checkers reject Type 3


def _lch_to_rgb(lightness: float, chroma: float, hue_deg: float) -> tuple[float, float, float]:
    """sRGB in [0, 1] of a CIE LCh(ab) colour (D65), clipped into the gamut."""
    a, b = chroma * math.cos(math.radians(hue_deg)), chroma * math.sin(math.radians(hue_deg))
    fy = (lightness + 16.0) / 116.0

    def finv(t: float) -> float:
        return t**3 if t > 6.0 / 29.0 else 3.0 * (6.0 / 29.0) ** 2 * (t - 4.0 / 29.0)

    x, y, z = 0.95047 * finv(fy + a / 500.0), finv(fy), 1.08883 * finv(fy - b / 200.0)
    linear = (
        3.2406 * x - 1.5372 * y - 0.4986 * z,
        -0.9689 * x + 1.8758 * y + 0.0415 * z,
        0.0557 * x - 0.2040 * y + 1.0570 * z,
    )
    return tuple(  # type: ignore[return-value]
        min(1.0, max(0.0, 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)) for c in linear
    )


def method_styles(count: int) -> list[dict[str, Any]]:
    """Line/bar styles (color, linestyle, marker) for ``count`` methods, all pairwise distinct.

    Up to 10 methods use matplotlib's tab10. More get hues evenly spaced in CIE LCh
    (equal perceived steps) at two alternating lightnesses, interleaved so that
    neighbours in the legend differ strongly in hue.
    """
    if count <= 10:
        from matplotlib import colormaps

        colors = [tuple(colormaps["tab10"](i)[:3]) for i in range(count)]
    else:
        ring = [_lch_to_rgb(52.0 if i % 2 else 70.0, 48.0, 20.0 + 360.0 * i / count) for i in range(count)]
        stride = math.ceil(math.sqrt(count))
        colors = [ring[i] for i in sorted(range(count), key=lambda i: (i % stride, i // stride))]
    return [
        {"color": colors[i], "linestyle": _LINESTYLES[i % len(_LINESTYLES)], "marker": _MARKERS[i % len(_MARKERS)]}
        for i in range(count)
    ]


def _legend_layout(labels: Sequence[str]) -> tuple[int, float, float]:
    """(columns, width in inches, height in inches) of a legend of ``labels`` at 7 pt."""
    columns = max(1, math.ceil(len(labels) / _LEGEND_MAX_ROWS))
    rows = math.ceil(len(labels) / columns)
    longest = max((len(label) for label in labels), default=0)
    column_width = 0.55 + 0.058 * longest
    return columns, columns * column_width, 0.16 * rows + 0.4


def _ordered(models: Sequence[str], order: Sequence[str] | None) -> list[str]:
    if order is None:
        return list(models)
    present, wanted = set(models), set(order)
    return [model for model in order if model in present] + [model for model in models if model not in wanted]


def _default_order(rows: pd.DataFrame) -> list[str]:
    """Models by mean error ascending (the table's order), then those without one."""
    mean = seed_statistics(rows, "mean_error", unit="mm")["mean"].sort_values(kind="mergesort")
    return list(mean.index) + [model for model in dict.fromkeys(rows["model"]) if model not in mean.index]


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _style_context():
    """Context manager: seaborn's whitegrid paper style plus our rc settings, undone on exit."""
    import matplotlib.style

    return matplotlib.style.context([*_STYLES, _RC])


def _add_legend(figure: Figure, handles: list[Any], labels: list[str], columns: int) -> None:
    figure.legend(
        handles, labels, loc="outside right upper", ncols=columns, frameon=False, fontsize=7,
        handlelength=3.2, borderaxespad=0.2, columnspacing=1.0,
    )


def success_rate_figure(results: pd.DataFrame, *, dataset: str, order: Sequence[str] | None = None) -> Figure:
    """Max-joint success rate (%) over thresholds 0..80 mm, one line per method of ``dataset``.

    ``order`` gives the legend order (default: mean error ascending). A method
    with several seeds is drawn at the mean over seeds, within a +- std band.
    """
    rows = results[results["dataset"] == dataset]
    stats = seed_statistics(rows, "success_rate_max", unit="fraction", by=("model", "threshold_mm"))
    curves = stats["mean"].unstack("threshold_mm")
    spreads = stats["std"].unstack("threshold_mm").reindex_like(curves)
    if curves.empty:
        raise ValueError(f"no success_rate_max rows for dataset {dataset!r}")
    models = _ordered(list(curves.index), order if order is not None else _default_order(rows))
    columns, legend_width, legend_height = _legend_layout([display_name(model) for model in models])
    with _style_context():
        figure = _new_figure(4.6 + legend_width, max(3.4, legend_height))
        axes = figure.add_subplot()
        thresholds = curves.columns.to_numpy(dtype=float)
        markevery = max(1, len(thresholds) // 8)
        handles = []
        for index, (model, style) in enumerate(zip(models, method_styles(len(models)), strict=True)):
            (line,) = axes.plot(
                thresholds, 100.0 * curves.loc[model].to_numpy(dtype=float), linewidth=1.2, markersize=3.5,
                markevery=(index % markevery, markevery), **style,  # staggered: markers of lines don't pile up
            )
            handles.append(line)
            spread = 100.0 * spreads.loc[model].to_numpy(dtype=float)
            if np.isfinite(spread).any():  # several seeds
                mean = 100.0 * curves.loc[model].to_numpy(dtype=float)
                axes.fill_between(thresholds, np.clip(mean - spread, 0.0, 100.0), np.clip(mean + spread, 0.0, 100.0),
                                  color=style["color"], alpha=0.15, linewidth=0)
        axes.set_xlim(thresholds.min(), thresholds.max())
        axes.set_ylim(0.0, 100.0)
        axes.set_xlabel("Maximum allowed distance to ground truth (mm)")
        axes.set_ylabel("Frames with all joints within distance (%)")
        _add_legend(figure, handles, [display_name(model) for model in models], columns)
    return figure


def joint_error_figure(results: pd.DataFrame, *, dataset: str, order: Sequence[str] | None = None) -> Figure:
    """Mean error (mm) of every joint, grouped bars with one colour per method of ``dataset``.

    Joints keep the order of the rows (the dataset spec's order); several seeds of a
    method give one bar per joint at their mean.
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Rectangle

    rows = results[results["dataset"] == dataset]
    errors = seed_statistics(rows, "joint_error", unit="mm", by=("model", "joint"))["mean"]
    if errors.empty:
        raise ValueError(f"no joint_error rows for dataset {dataset!r}")
    joints = list(dict.fromkeys(errors.index.get_level_values("joint")))
    table = errors.unstack("joint").reindex(columns=joints)
    models = _ordered(list(table.index), order if order is not None else _default_order(rows))
    columns, legend_width, legend_height = _legend_layout([display_name(model) for model in models])
    # inches per joint group: bars ~0.05 in wide, thinner once the axes would pass 5 in (a double column is 6.9 in)
    axes_width = min(MAX_AXES_WIDTH_IN, len(joints) * (0.2 + 0.05 * len(models)))
    with _style_context():
        figure = _new_figure(1.0 + axes_width + legend_width, max(3.6, legend_height + 0.9))
        axes = figure.add_subplot()
        positions = np.arange(len(joints), dtype=float)
        width = 0.8 / len(models)
        colors = [style["color"] for style in method_styles(len(models))]
        # All bars as one PolyCollection: for 26 x 14 bars, several times faster to build and draw than patches.
        left = (positions[None, :] - 0.4 + (np.arange(len(models))[:, None]) * width).ravel()
        height, top, clipped = _clipped_heights(table.loc[models].to_numpy(dtype=float).ravel())
        right, zero = left + width, np.zeros_like(left)
        quads = np.stack([np.stack(corner, axis=-1) for corner in (
            (left, zero), (left, height), (right, height), (right, zero))], axis=1)
        shown = np.isfinite(height)
        axes.add_collection(PolyCollection(
            quads[shown], facecolors=np.repeat(colors, len(joints), axis=0)[shown], linewidths=0, zorder=2,
        ))
        axes.set_ylim(0.0, 1.05 * top)
        if clipped:
            axes.set_title(f"{plural(clipped, 'bar')} beyond {CLIP_MM:g} mm clipped", fontsize="small")
        handles = [Rectangle((0, 0), 1, 1, facecolor=color, linewidth=0) for color in colors]
        axes.set_xticks(positions, joints, rotation=40, ha="right", rotation_mode="anchor")
        axes.set_xlim(-0.6, len(joints) - 0.4)
        axes.set_ylabel("Mean joint error (mm)")
        axes.grid(axis="x", visible=False)
        _add_legend(figure, handles, [display_name(model) for model in models], columns)
    return figure


MAX_AXES_WIDTH_IN = 5.0
"""Widest per-joint bar axes, inches: with its legend the figure stays near a double column (6.9 in)."""

CLIP_MM = 1000.0
"""Joint-error bars above this (or infinite) are drawn clipped to it: a metre off is no hand pose."""


def _clipped_heights(height: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Bar heights with +inf and values above :data:`CLIP_MM` clipped (nan stays: no bar), the axis top and
    how many bars were clipped."""
    over = ~np.isnan(height) & ~(height <= CLIP_MM)
    clipped = np.where(over, CLIP_MM, height)
    finite = clipped[np.isfinite(clipped)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return clipped, top, int(over.sum())


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.pdf and ``stem``.png without dates or version stamps (reproducible bytes).

    The layout is computed once, while drawing the PDF, and then frozen (the
    figure's layout engine is removed), so the PNG costs one draw instead of two.
    """
    from hpbench import __version__
    from hpbench.files import atomic_write

    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    pdf_metadata = {"Creator": f"hpbench {__version__}", "Producer": None, "CreationDate": None, "ModDate": None}
    with _style_context():
        atomic_write(paths[0], lambda temporary: figure.savefig(temporary, format="pdf", metadata=pdf_metadata))
        figure.set_layout_engine("none")
        atomic_write(paths[1], lambda temporary: figure.savefig(temporary, format="png", dpi=PNG_DPI,
                                                                 metadata={"Software": None}))
    return paths

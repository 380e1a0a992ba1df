"""Report figures: success-rate curves and per-joint errors (means from results rows, distributions
from per-frame errors).

Figures are sized for a paper: a single column (3.3 in) or a double column (6.9 in) wide, all text
at 8 pt, fonts embedded as TrueType (not Type 3, which conference PDF checkers reject). The look is
seaborn's "whitegrid" style and "paper" context, and its colour-blind palette for up to 10 methods;
seaborn is imported by the first figure drawn, never by ``hpbench --help`` or ``eval``. Its rc
settings apply inside a context manager: no global rcParams change.

Figures are plain ``matplotlib.figure.Figure`` objects drawn without pyplot's figure registry: no
switch of the caller's backend (a notebook keeps its own), nothing to close; PDF and PNG are
rendered by the non-interactive backends. Files carry no dates or version stamps, so the same
input gives byte-identical PDFs and PNGs.

A figure shows the methods it is given (the report picks at most 8 by default, all of them stay in
the tables). Past 10 methods the palette cannot keep colours apart: hues are then spread evenly in
CIE LCh and interleaved, and line styles and markers cycle with other periods.

Several seeds of one method (a sweep) draw as one line or bar at their mean, the curve with a light
band of +- one sample standard deviation; one seed draws as before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hpbench._text import plural
from hpbench.report.names import display_name
from hpbench.report.tables import seed_statistics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DOUBLE_COLUMN_IN", "FONT_PT", "SINGLE_COLUMN_IN", "joint_distribution_figure", "joint_error_figure",
    "method_styles", "save_figure", "success_rate_figure",
]

SINGLE_COLUMN_IN = 3.3
"""Width of a single-column figure, inches (two-column conference layouts: 3.3-3.5 in)."""
DOUBLE_COLUMN_IN = 6.9
"""Width of a double-column figure, inches."""
FONT_PT = 8.0
"""Size of every text in a figure, points."""
PNG_DPI = 200
"""Resolution of PNG figures, dots per inch."""
PNG_COMPRESSION = 3
"""zlib level of PNG figures. Against Pillow's default 6, on the four NYU report figures: 82 against 112 ms
to encode, files 1-6 % smaller (plots of flat colours gain nothing from the slower levels)."""

_LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X")
_PALETTE_SIZE = 10  # colours in seaborn's "colorblind" palette


def _seaborn():  # -> the seaborn module
    """seaborn, imported on first use (only the report draws with it)."""
    import seaborn

    return seaborn


def _rc() -> dict[str, Any]:
    """seaborn's whitegrid style and paper context with all text at :data:`FONT_PT`, TrueType fonts."""
    sns = _seaborn()
    sizes = {key: FONT_PT for key in ("font.size", "axes.labelsize", "axes.titlesize", "xtick.labelsize",
                                      "ytick.labelsize", "legend.fontsize", "legend.title_fontsize")}
    return {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", rc=sizes),
            "figure.titlesize": FONT_PT, "pdf.fonttype": 42, "ps.fonttype": 42,
            "figure.autolayout": False, "figure.constrained_layout.use": False}  # each figure names its layout


def _style_context():
    """Context manager: the figures' rc settings (:func:`_rc`), undone on exit."""
    import matplotlib.style

    return matplotlib.style.context(_rc())


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

    Up to 10 methods take seaborn's colour-blind palette. More get hues evenly spaced in CIE LCh
    (equal perceived steps) at two alternating lightnesses, interleaved so that neighbours in the
    legend differ strongly in hue.
    """
    if count <= _PALETTE_SIZE:
        colors = [tuple(float(c) for c in rgb) for rgb in _seaborn().color_palette("colorblind", count)]
    else:
        ring = [_lch_to_rgb(52.0 if i % 2 else 70.0, 48.0, 20.0 + 360.0 * i / count) for i in range(count)]
        stride = math.ceil(math.sqrt(count))
        colors = [ring[i] for i in sorted(range(count), key=lambda i: (i % stride, i // stride))]
    return [
        {"color": colors[i], "linestyle": _LINESTYLES[i % len(_LINESTYLES)], "marker": _MARKERS[i % len(_MARKERS)]}
        for i in range(count)
    ]


_LEGEND_ROW_IN = 0.155  # one legend row at 8 pt
_CHAR_IN = 0.062  # mean width of a character at 8 pt (DejaVu Sans), inches


def _legend_columns(labels: Sequence[str], width_in: float) -> int:
    """Columns of a legend of ``labels`` that fit in ``width_in`` (at least one)."""
    longest = max((len(label) for label in labels), default=0)
    column_in = 0.45 + _CHAR_IN * longest  # handle, padding and text
    return max(1, min(len(labels), int(width_in // column_in)))


def _legend_height(labels: Sequence[str], columns: int) -> float:
    return _LEGEND_ROW_IN * math.ceil(len(labels) / columns) + 0.1


def _add_legend(figure: Figure, handles: list[Any], labels: list[str], columns: int, where: str) -> None:
    figure.legend(handles, labels, loc=f"outside {where}", ncols=columns, frameon=False, handlelength=2.4,
                  borderaxespad=0.1, columnspacing=1.0, handletextpad=0.5)


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


def success_rate_figure(results: pd.DataFrame, *, dataset: str, order: Sequence[str] | None = None) -> Figure:
    """Max-joint success rate (%) over thresholds 0..80 mm, one line per method of ``dataset``; a single
    column wide, the legend below the axes (taller, not wider, with more methods).

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
    labels = [display_name(model) for model in models]
    columns = _legend_columns(labels, SINGLE_COLUMN_IN)
    with _style_context():
        figure = _new_figure(SINGLE_COLUMN_IN, 2.5 + _legend_height(labels, columns))
        axes = figure.add_subplot()
        thresholds = curves.columns.to_numpy(dtype=float)
        markevery = max(1, len(thresholds) // 8)
        handles = []
        for index, (model, style) in enumerate(zip(models, method_styles(len(models)), strict=True)):
            (line,) = axes.plot(
                thresholds, 100.0 * curves.loc[model].to_numpy(dtype=float), linewidth=1.1, markersize=3.0,
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
        axes.set_xlabel("Max. joint error threshold (mm)")
        axes.set_ylabel("Frames within threshold (%)")
        _add_legend(figure, handles, labels, columns, "lower center")
    return figure


def joint_error_figure(results: pd.DataFrame, *, dataset: str, order: Sequence[str] | None = None) -> Figure:
    """Mean error (mm) of every joint, grouped bars with one colour per method of ``dataset``; a double
    column wide, the legend above the axes.

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
    labels = [display_name(model) for model in models]
    columns = _legend_columns(labels, DOUBLE_COLUMN_IN)
    with _style_context():
        figure = _new_figure(DOUBLE_COLUMN_IN, 2.7 + _legend_height(labels, columns))
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
            axes.set_title(f"{plural(clipped, 'bar')} beyond {CLIP_MM:g} mm clipped")
        handles = [Rectangle((0, 0), 1, 1, facecolor=color, linewidth=0) for color in colors]
        axes.set_xticks(positions, joints, rotation=35, ha="right", rotation_mode="anchor")
        axes.set_xlim(-0.6, len(joints) - 0.4)
        axes.set_ylabel("Mean joint error (mm)")
        axes.grid(axis="x", visible=False)
        _add_legend(figure, handles, labels, columns, "upper center")
    return figure


BOX_PERCENTILES = np.arange(101)
"""Percentiles of each (method, joint) error that a box is drawn from (matplotlib's boxplot statistics of
these 101 values equal those of every frame: see :func:`joint_distribution_figure`); the five it shows
(``_BOX_ROWS``) are all that is computed."""
_BOX_ROWS = {"whislo": 5, "q1": 25, "med": 50, "q3": 75, "whishi": 95}  # rows of BOX_PERCENTILES
_BOX_WIDTH, _BOX_GAP = 0.82, 0.1  # all boxes of a joint span 0.82; a tenth of each box's slot is left empty


def joint_distribution_figure(errors: Mapping[str, np.ndarray], *, joints: Sequence[str],
                              order: Sequence[str] | None = None) -> Figure:
    """Distribution of each joint's error (mm) over the frames, a box per joint and method; a double
    column wide, the legend above the axes.

    ``errors``: model -> (frames, joints) errors in mm, e.g. :attr:`hpbench.scoring.Score.errors_mm`;
    ``order``: the legend order (default: as given). Boxes span the quartiles around the median,
    whiskers the 5th to 95th percentile; frames beyond are not drawn. The boxes are seaborn's
    ``boxplot(whis=(5, 95), width=0.82, gap=0.1, linewidth=0.5)`` of each (method, joint)'s 101
    percentiles 0, 1, ..., 100 (which give the same median, quartiles and 5/95 % whiskers as every
    frame: the q-th percentile of those percentiles is the q-th percentile, for a whole q), drawn from
    those statistics as four collections instead of six artists per box.
    Errors beyond :data:`CLIP_MM` (an unchecked file's) are drawn at it, and the title counts them.
    """
    if not errors:
        raise ValueError("no per-frame errors to draw")
    models = _ordered(list(errors), order)
    for model in models:
        if np.shape(errors[model])[1:] != (len(joints),):
            raise ValueError(f"errors of {model} are {np.shape(errors[model])}, expected (frames, {len(joints)})")
    labels = [display_name(model) for model in models]
    clipped = sum(int((~(np.asarray(errors[model]) <= CLIP_MM)).sum()) for model in models)
    # (statistic, method, joint) in mm; errors beyond CLIP_MM (or infinite, unchecked files) drawn at CLIP_MM
    drawn = BOX_PERCENTILES[list(_BOX_ROWS.values())]  # only these: each percentile is computed on its own
    stats = np.stack([np.percentile(np.minimum(errors[model], CLIP_MM), drawn, axis=0) for model in models], axis=1)
    columns = _legend_columns(labels, DOUBLE_COLUMN_IN)
    colors = [style["color"] for style in method_styles(len(models))]
    with _style_context():
        figure = _new_figure(DOUBLE_COLUMN_IN, 2.7 + _legend_height(labels, columns))
        axes = figure.add_subplot()
        _draw_boxes(axes, dict(zip(_BOX_ROWS, stats, strict=True)), colors)
        axes.set_xlim(-0.5, len(joints) - 0.5)
        axes.set_ylim(bottom=0.0)
        if clipped:
            axes.set_title(f"{plural(clipped, 'error')} beyond {CLIP_MM:g} mm drawn at {CLIP_MM:g} mm")
        axes.set_xticks(range(len(joints)), list(joints), rotation=35, ha="right", rotation_mode="anchor")
        axes.set_ylabel("Joint error (mm): quartiles, 5-95 %")
        axes.grid(axis="x", visible=False)
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=color, edgecolor="0.25", linewidth=0.5) for color in colors]
        _add_legend(figure, handles, labels, columns, "upper center")
    return figure


def _draw_boxes(axes: Axes, stats: dict[str, np.ndarray], colors: Sequence[tuple[float, float, float]]) -> None:
    """Boxes, whiskers, caps and medians of ``stats`` (name -> (methods, joints) mm) on ``axes``, dodged per
    method around each joint, as seaborn's boxplot places and colours them (fill at 75 % saturation, lines a
    gray of 0.6 x the fills' least lightness), one collection per kind of element."""
    import colorsys

    from matplotlib.collections import LineCollection, PolyCollection

    colors = [_seaborn().desaturate(color, 0.75) for color in colors]
    methods, joints = stats["med"].shape
    slot = _BOX_WIDTH / methods  # seaborn's arithmetic, operation for operation: the same pixels
    offset = slot * np.arange(methods)[:, None] + slot / 2 - slot * methods / 2
    centre = (np.arange(joints, dtype=float)[None, :] + offset).ravel()
    width = slot * (1 - _BOX_GAP)
    half = ((centre + width / 2) - (centre - width / 2)) * 0.5
    left, right = centre - half, centre + half
    q1, q3, med, low, high = (stats[name].ravel() for name in ("q1", "q3", "med", "whislo", "whishi"))
    gray = 0.6 * min(colorsys.rgb_to_hls(*color)[1] for color in colors)
    line = {"colors": [(gray, gray, gray)], "linewidths": 0.5, "zorder": 2}

    def segments(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
        return np.stack([np.stack([x0, y0], axis=-1), np.stack([x1, y1], axis=-1)], axis=1)

    whiskers = np.concatenate([segments(centre, q1, centre, low), segments(centre, q3, centre, high)])
    caps = np.concatenate([segments(centre - width * 0.25, y, centre + width * 0.25, y) for y in (low, high)])
    axes.add_collection(LineCollection(whiskers, capstyle="butt", **line))
    axes.add_collection(LineCollection(caps, capstyle="round", **line))
    boxes = np.stack([np.stack(corner, axis=-1) for corner in ((left, q1), (right, q1), (right, q3), (left, q3))],
                     axis=1)
    axes.add_collection(PolyCollection(boxes, facecolors=np.repeat(colors, joints, axis=0), edgecolors=line["colors"],
                                       linewidths=0.5, joinstyle="miter", zorder=2))
    axes.add_collection(LineCollection(segments(left, med, right, med), capstyle="butt", **{**line, "zorder": 2.1}))


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


LAYOUT_TABLES: tuple[str, ...] = ("GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH")
"""OpenType layout tables left out of the font subsets embedded in our PDFs. Text is shaped when the
figure is drawn; a PDF places each glyph itself, and no viewer or checker reads these tables from an
embedded font. Keeping them, fontTools subsets DejaVu Sans's GSUB and GPOS for each PDF: about 120 of
150 ms a file here, for the same page (the content streams and glyph outlines are byte-identical)."""

_SUBSET_LOCK = threading.Lock()


class _LeanSubset:
    """fontTools' ``subset`` module as matplotlib's PDF backend uses it, whose options also drop
    :data:`LAYOUT_TABLES`; everything else is the module's own."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def Options(self, *args: Any, **kwargs: Any) -> Any:  # the name matplotlib calls
        options = self._module.Options(*args, **kwargs)
        options.drop_tables += [table for table in LAYOUT_TABLES if table not in options.drop_tables]
        return options


@contextmanager
def _lean_font_subsets() -> Iterator[None]:
    """While open, PDFs that matplotlib writes embed TrueType subsets without :data:`LAYOUT_TABLES`.

    matplotlib (3.8 to 3.11 at least) subsets through the ``subset`` name of its private
    ``backends._backend_pdf_ps`` module; where that name is missing this changes nothing. The swap is
    undone on exit and held under a lock, so threads saving figures at once cannot leave it in place.
    """
    from matplotlib.backends import _backend_pdf_ps

    with _SUBSET_LOCK:
        module = getattr(_backend_pdf_ps, "subset", None)
        if module is None or not hasattr(module, "Options"):
            yield
            return
        _backend_pdf_ps.subset = _LeanSubset(module)
        try:
            yield
        finally:
            _backend_pdf_ps.subset = module


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.pdf and ``stem``.png without dates or version stamps (reproducible bytes).

    The figure's layout (constrained) is computed once, then the layout engine is removed: each file
    costs one draw. (savefig gives a figure with any layout engine, even the placeholder that
    ``set_layout_engine("none")`` leaves, a dry draw first, and a constrained one runs at every draw.)
    The PDF's embedded font subsets leave out :data:`LAYOUT_TABLES`.
    """
    from hpbench import __version__
    from hpbench.files import atomic_write

    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    pdf_metadata = {"Creator": f"hpbench {__version__}", "Producer": None, "CreationDate": None, "ModDate": None}
    with _style_context():
        engine = figure.get_layout_engine()
        if engine is not None:
            engine.execute(figure)
            figure.set_layout_engine(None)  # removed, not replaced: _rc() turns rcParams' automatic layouts off
        with _lean_font_subsets():
            atomic_write(paths[0], lambda temporary: figure.savefig(temporary, format="pdf", metadata=pdf_metadata))
        atomic_write(paths[1], lambda temporary: figure.savefig(temporary, format="png", dpi=PNG_DPI,
                                                                 metadata={"Software": None},
                                                                 pil_kwargs={"compress_level": PNG_COMPRESSION}))
    return paths

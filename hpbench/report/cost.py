"""Error against cost: mean 3D error (mm) against thop MACs (log axis) and against latency.

Points come from three places, each named in the ``error_from`` / ``gmac_from`` columns:
- methods scored in the results rows (this library's trained models and the community's
  released predictions): their mean error; their MACs from profile rows, else from the model
  card (for a released file, the card of the model that reimplements it);
- papers: a card's published error for the dataset, for methods without a scored row, with the
  seed paper's quoted MACs (hpbench.report.quoted, per sample) where it quotes one, else the card's.
The Pareto frontier joins the points no other point beats in both error and cost; reference
floors and smoke-schedule rows are drawn but never on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hpbench.report.names import card_of, display_name, is_reference
from hpbench.report.quoted import quote_of
from hpbench.report.tables import QUICK, seed_statistics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["cost_figure", "cost_points", "pareto_front"]

POINT_COLUMNS: tuple[str, ...] = (
    "Method", "Model", "Mean error (mm)", "error_from", "thop MACs (G)", "gmac_from", "Latency (ms)", "runtime",
    "timing", "schedule", "reference", "note",
)
"""Columns of :func:`cost_points` (and of the figure's CSV)."""


def _profile_value(results: pd.DataFrame, model: str, dataset: str, metric: str) -> pd.DataFrame:
    """``metric`` rows of ``model`` (else of the card's model reimplementing it) for ``dataset``, else for none."""
    if results.empty:  # no rows to find: no card to load
        return results
    card = card_of(model)
    for name in dict.fromkeys([model, card.name if card is not None else model]):
        rows = results[(results["model"] == name) & (results["metric"] == metric)]
        mine = rows[rows["dataset"] == dataset]
        mine = mine if not mine.empty else rows[rows["dataset"] == ""]
        if not mine.empty:
            return mine
    return results.iloc[:0]


def _gmac(results: pd.DataFrame, model: str, dataset: str) -> tuple[float, str]:
    """(thop GMAC, where it came from) of ``model``: its profile rows, else its card; (nan, "") if neither."""
    rows = _profile_value(results, model, dataset, "macs")
    rows = rows[(rows["counter"] == "thop") & (rows["unit"] == "GMAC")]
    if not rows.empty:
        return float(rows["value"].iloc[0]), "profile"
    card = card_of(model)
    if card is not None and dataset in card.declared:
        return card.declared[dataset].thop_macs / 1e9, f"card ({card.name})"
    return float("nan"), ""


_PROFILE_METRICS = ("macs", "latency_median")  # the metrics of the rows _profile_value is asked for
_RUNTIME_ORDER = ("eager fused", "eager")  # the profiler's inference-ready model first, applied to every model alike


def _runtimes(rows: pd.DataFrame) -> pd.Series:
    """Each latency row's runtime: its ``runtime`` column; in files written before that column, the
    ``counter`` text before its colon ("eager fused: <method>")."""
    given = rows["runtime"].fillna("") if "runtime" in rows.columns else pd.Series("", index=rows.index)
    return given.where(given != "", rows["counter"].fillna("").str.split(":").str[0])


def _latency(results: pd.DataFrame, model: str, dataset: str) -> tuple[float, str, str]:
    """(median latency ms, runtime "<runtime> on <device>, N threads", "" or why the timing is unreliable)
    of ``model``: CPU rows first, eager fused before eager before the other runtimes."""
    rows = _profile_value(results, model, dataset, "latency_median")
    rows = rows[rows["unit"] == "ms"]
    if rows.empty:
        return float("nan"), "", ""
    runtime = _runtimes(rows)
    rank = runtime.map(lambda name: _RUNTIME_ORDER.index(name) if name in _RUNTIME_ORDER else len(_RUNTIME_ORDER))
    rows = rows.assign(gpu=~rows["device"].str.startswith("cpu"), rank=rank, runtime=runtime)
    first = rows.sort_values(["gpu", "rank"], kind="mergesort").iloc[0]
    threads = "" if pd.isna(first["threads"]) else f", {int(first['threads'])} threads"
    device = str(first["device"]).split(":", 1)[-1].strip()
    where = f"{first['runtime'] or 'eager'} on {str(first['device']).split(':')[0].split()[0]}: {device}{threads}"
    source = str(first.get("source", "") or "")
    return float(first["value"]), where, source.removeprefix("unverified; ") if "unreliable" in source else ""


def _scored_points(results: pd.DataFrame, profiles: pd.DataFrame, dataset: str) -> list[dict[str, object]]:
    """The methods scored in ``results`` on ``dataset``, with their costs from ``profiles`` (its
    :data:`_PROFILE_METRICS` rows)."""
    rows = results[results["dataset"] == dataset]
    errors = seed_statistics(rows, "mean_error", unit="mm")["mean"]
    schedules = rows[rows["metric"] == "mean_error"].groupby("model")["schedule"].first() \
        if "schedule" in rows.columns else pd.Series(dtype=object)
    points = []
    for model, error in errors.items():
        gmac, gmac_from = _gmac(profiles, str(model), dataset)
        latency, runtime, timing = _latency(profiles, str(model), dataset)
        points.append({"Method": display_name(str(model)), "Model": model, "Mean error (mm)": float(error),
                       "error_from": "scored here", "thop MACs (G)": gmac, "gmac_from": gmac_from,
                       "Latency (ms)": latency, "runtime": runtime, "timing": timing,
                       "schedule": str(schedules.get(model, "") or ""), "reference": is_reference(str(model)),
                       "note": ""})
    return points


def _paper_points(profiles: pd.DataFrame, dataset: str, scored: set[str]) -> list[dict[str, object]]:
    """Cards with a published error for ``dataset`` and no scored row of theirs (nor of a released file), with
    their costs from ``profiles`` (its :data:`_PROFILE_METRICS` rows)."""
    from hpbench.cards import card_names, load_card

    points = []
    for name in card_names():
        card = load_card(name)
        published = card.published.get(dataset)
        if published is None or published.mean_error_mm is None or name in scored:
            continue
        quote = quote_of(name)
        gmac, gmac_from = _gmac(profiles, name, dataset)
        note = ""
        if quote is not None and quote.gmac_per_sample is not None:
            gmac, gmac_from = quote.gmac_per_sample, "quoted (seed paper)"
            note = quote.gmac_note or (f"quoted {quote.gmac:g} G at batch {quote.batch}" if quote.batch > 1 else "")
        latency, runtime, timing = _latency(profiles, name, dataset)
        points.append({"Method": display_name(name), "Model": name, "Mean error (mm)": published.mean_error_mm,
                       "error_from": "paper", "thop MACs (G)": gmac, "gmac_from": gmac_from,
                       "Latency (ms)": latency, "runtime": runtime, "timing": timing, "schedule": "",
                       "reference": False, "note": note})
    return points


def cost_points(results: pd.DataFrame, *, dataset: str) -> pd.DataFrame:
    """One row per method of ``dataset`` with its mean error (mm), thop MACs (G) and latency (ms), and
    where each came from (:data:`POINT_COLUMNS`); NaN where a number is unknown."""
    profiles = results[results["metric"].isin(_PROFILE_METRICS)]  # all _gmac and _latency read: filtered once
    scored = _scored_points(results, profiles, dataset)
    cards = {getattr(card_of(str(point["Model"])), "name", None) for point in scored}
    points = scored + _paper_points(profiles, dataset, {name for name in cards if name})
    return pd.DataFrame(points, columns=list(POINT_COLUMNS))


def pareto_front(errors: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point beats: lower or equal error and cost, one strictly lower.

    NaN or non-positive costs and NaN errors are never on the front."""
    valid = np.isfinite(errors) & np.isfinite(costs) & (costs > 0)
    front = np.zeros(len(errors), dtype=bool)
    for i in np.flatnonzero(valid):
        others = valid & (errors <= errors[i]) & (costs <= costs[i]) & ((errors < errors[i]) | (costs < costs[i]))
        front[i] = not others.any()
    return front


_KINDS = {  # error_from / gmac_from -> marker and legend text
    "scored": ("o", "error scored here"),
    "paper": ("s", "error from its paper"),
    "quoted": ("D", "error from its paper, MACs as quoted"),
}


def _kind(point: pd.Series) -> str:
    if point["error_from"] != "paper":
        return "scored"
    return "quoted" if str(point["gmac_from"]).startswith("quoted") else "paper"


def _extents(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) display boxes as (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.column_stack([np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3]),
                            np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])])


def _hits(box: np.ndarray, taken: np.ndarray) -> bool:
    """Whether the (x0, y0, x1, y1) ``box`` overlaps any row of ``taken`` (touching counts, as Bbox.overlaps)."""
    return bool(np.any((taken[:, 0] <= box[2]) & (box[0] <= taken[:, 2]) & (taken[:, 1] <= box[3])
                       & (box[1] <= taken[:, 3])))


def _line_samples(axes: Axes, step_px: float = 3.0) -> np.ndarray:
    """Display-coordinate points every ``step_px`` along the axes' lines, each through its own transform (a
    level's x is in axes coordinates); the lines are read as post steps (the frontier; a level is flat)."""
    samples = [np.empty((0, 2))]
    for line in axes.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) == 0:
            continue
        corners = np.repeat(xy, 2, axis=0)[1:]  # (x0, y0) (x1, y0) (x1, y1) (x2, y1) ...: post steps
        corners[1::2, 1] = xy[:-1, 1]
        path = line.get_transform().transform(corners)
        for start, stop in zip(path[:-1], path[1:], strict=True):
            count = max(2, int(np.hypot(*(stop - start)) / step_px) + 1)
            samples.append(start + np.linspace(0.0, 1.0, count)[:, None] * (stop - start))
    return np.concatenate(samples)


def _place_labels(axes: Axes, xs: np.ndarray, ys: np.ndarray, labels: list[str], renderer) -> None:
    """Label each point at the first of a ring of offsets where its text hits no other label, no point and
    stays inside the axes; failing all, at the farthest offset with a leader line."""
    centres = axes.transData.transform(np.column_stack([xs, ys])).reshape(-1, 2)
    lines = _line_samples(axes)
    # a margin: a label never sits on another method's marker, so it reads as its own point's; nor on a line
    taken = np.concatenate([_extents(np.hstack([centres - 7, centres + 7])),
                            _extents(np.hstack([lines - 1.5, lines + 1.5]))])
    inside = axes.get_window_extent(renderer)
    offsets = [(dx * r, dy * r) for r in (1, 2, 3.2) for dx, dy in
               ((4, 2), (-4, 2), (4, -8), (-4, -8), (0, 6), (0, -12), (8, 8), (-8, -12))]
    for x, y, label in sorted(zip(xs, ys, labels, strict=True), key=lambda item: item[1]):
        for dx, dy in offsets:
            text = axes.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points",
                                 ha="left" if dx > 0 else "right" if dx < 0 else "center", annotation_clip=False)
            box = text.get_window_extent(renderer)
            if not _hits(_extents(box.extents)[0], taken) and inside.contains(box.x0, box.y0) \
                    and inside.contains(box.x1, box.y1):
                break
            text.remove()
        else:
            text = axes.annotate(label, (x, y), xytext=offsets[-1], textcoords="offset points",
                                 ha="right", annotation_clip=False,
                                 arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": "0.4"})
            box = text.get_window_extent(renderer)
        text.set_in_layout(False)
        taken = np.concatenate([taken, _extents(box.extents)])


def _levels(points: pd.DataFrame, column: str) -> pd.DataFrame:
    """Reference floors with an error but no positive ``column`` cost (the mean pose computes nothing): no
    place on a log axis, so their panel draws them as a level line."""
    error = np.isfinite(points["Mean error (mm)"].to_numpy(dtype=float))
    return points[points["reference"].astype(bool) & error & ~(points[column].to_numpy(dtype=float) > 0)]


def _panel(axes: Axes, points: pd.DataFrame, column: str, xlabel: str, colors: dict[str, object]) -> None:
    for _, level in _levels(points, column).iterrows():
        axes.axhline(level["Mean error (mm)"], color=colors[level["Model"]], linestyle=":", linewidth=0.9, zorder=1)
    drawn = points[np.isfinite(points[column].to_numpy(dtype=float)) & (points[column] > 0)]
    eligible = ~drawn["reference"].astype(bool) & (drawn["schedule"] != QUICK)
    errors, costs = drawn["Mean error (mm)"].to_numpy(dtype=float), drawn[column].to_numpy(dtype=float)
    front = pareto_front(np.where(eligible, errors, np.nan), costs)
    order = np.argsort(costs[front])
    axes.step(costs[front][order], errors[front][order], where="post", color="0.55", linewidth=0.8,
              linestyle="--", zorder=1, label="Pareto frontier")
    for (_, point), on_front in zip(drawn.iterrows(), front, strict=True):
        marker = _KINDS[_kind(point)][0]
        quick = point["schedule"] == QUICK
        if quick:  # a smoke-schedule row: a cross, never on the frontier (an unfilled marker has no edge)
            axes.scatter([point[column]], [point["Mean error (mm)"]], s=22, marker="x", zorder=3,
                         color=colors[point["Model"]], linewidths=0.9)
        else:
            axes.scatter([point[column]], [point["Mean error (mm)"]], s=22, marker=marker, zorder=3,
                         facecolors=colors[point["Model"]], edgecolors="black" if on_front else "none",
                         linewidths=0.6)
    from matplotlib.ticker import NullLocator

    axes.set_xscale("log")
    axes.xaxis.set_minor_locator(NullLocator())  # minor labels of a short log range collide; no tick marks are drawn
    axes.set_xlabel(xlabel)
    axes.set_ylabel("Mean 3D error (mm)")
    axes.margins(x=0.25, y=0.18)


def _shown_runtime(points: pd.DataFrame) -> str:
    """The runtime of the latency panel: the one most points were timed in (ties: eager fused first)."""
    counts = points["runtime"][points["runtime"].astype(bool)].value_counts()
    best = counts[counts == counts.max()].index
    return sorted(best, key=lambda name: (not str(name).startswith("eager fused"), str(name)))[0]


def cost_figure(points: pd.DataFrame, *, dataset: str) -> Figure:
    """Mean error against thop MACs (log x), and against latency in its runtime when any point has one:
    one panel a single column wide (3.3 in), two a double column (6.9 in); frontier points outlined in
    black; what each marker means in a legend below. "MACs as quoted": the seed paper's count."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from hpbench.report.figures import (
        DOUBLE_COLUMN_IN, SINGLE_COLUMN_IN, _legend_columns, _legend_height, _style_context, method_styles,
    )

    latency = np.isfinite(points["Latency (ms)"].to_numpy(dtype=float)).any()
    styles = method_styles(len(points))
    colors = {model: style["color"] for model, style in zip(points["Model"], styles, strict=True)}
    quick = points["schedule"] == QUICK
    kinds = sorted({_kind(point) for _, point in points[~quick].iterrows()})
    levels = _levels(points, "thop MACs (G)")
    labels = [_KINDS[k][1] for k in kinds] + (["smoke schedule (--quick), never on the frontier"] if quick.any()
                                              else []) + ["Pareto frontier"] + [
        f"{method}: {error:.3g} mm, no MACs (a level)" for method, error in
        zip(levels["Method"], levels["Mean error (mm)"], strict=True)]
    width = DOUBLE_COLUMN_IN if latency else SINGLE_COLUMN_IN
    columns = _legend_columns(labels, width)
    with _style_context():
        figure = Figure(figsize=(width, 2.8 + _legend_height(labels, columns)), layout="constrained")
        FigureCanvasAgg(figure)
        panels = figure.subplots(1, 2 if latency else 1, squeeze=False)[0]
        _panel(panels[0], points, "thop MACs (G)", "thop MACs per sample (G, log)", colors)
        if latency:
            runtime = _shown_runtime(points)
            timed = points[points["runtime"] == runtime]
            _panel(panels[1], timed, "Latency (ms)", "Latency, batch 1 (ms, log)", colors)
            flagged = timed["timing"].astype(bool).any()
            panels[1].set_title(runtime + ("\n(!) timing flagged unreliable (busy machine)" if flagged else ""))
        handles = [Line2D([], [], marker=_KINDS[k][0], linestyle="", color="0.3", markersize=4) for k in kinds]
        if quick.any():
            handles.append(Line2D([], [], marker="x", linestyle="", color="0.3", markersize=4))
        handles.append(Line2D([], [], color="0.55", linestyle="--", linewidth=0.8))
        handles += [Line2D([], [], color=colors[model], linestyle=":", linewidth=0.9) for model in levels["Model"]]
        figure.legend(handles, labels, loc="outside lower center", ncols=columns, frameon=False)
        figure.suptitle(f"{dataset.upper()}: error against cost")
        figure.draw_without_rendering()  # the constrained layout, done once: point labels stay out of it
        figure.set_layout_engine(None)  # (removed: _style_context turns rcParams' automatic layouts off)
        renderer = figure.canvas.get_renderer()
        for axes, column in zip(panels, ("thop MACs (G)", "Latency (ms)")):
            shown = points[np.isfinite(points[column].to_numpy(dtype=float)) & (points[column] > 0)]
            labels = list(shown["Method"])
            if axes is panels[-1] and column == "Latency (ms)":
                shown = shown[shown["runtime"] == _shown_runtime(points)]
                labels = [name + (" (!)" if timing else "") for name, timing in zip(shown["Method"], shown["timing"],
                                                                                     strict=True)]
            _place_labels(axes, shown[column].to_numpy(dtype=float), shown["Mean error (mm)"].to_numpy(dtype=float),
                          labels, renderer)
    return figure

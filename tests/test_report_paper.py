"""Tests of the report's method names, row marks, paper comparisons and the error-against-cost figure.

Expected values come from outside the code: the published file names and venues of handpose-eval,
the papers' numbers (V2V-PoseNet 8.42 mm NYU, A2J 8.61 mm), the seed paper's quotes and the
original code's counts in design/baselines.md and design/profiling.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpbench.report import figure_methods, markdown_table, summary_table, write_report
from hpbench.report.cost import cost_figure, cost_points, pareto_front
from hpbench.report.names import display_name
from hpbench.report.paper import paper_table, reproduction_table
from hpbench.report.tables import best_cells, latex_table, table_notes
from hpbench.results import make_rows


def rows_of(errors: dict[str, float], *, dataset: str = "nyu", costs: dict[str, tuple[float, float]] | None = None,
            extra: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """mean_error rows (mm) per model, params (count) and thop MACs (GMAC) per model in ``costs``, and a
    2-thread CPU latency of 5 ms for each costed model; ``extra`` adds columns (protocol, schedule) per model."""
    records = [{"model": m, "metric": "mean_error", "value": v, "unit": "mm", "n": 100} for m, v in errors.items()]
    for model, (params, gmac) in (costs or {}).items():
        records += [
            {"model": model, "metric": "params", "value": params, "unit": "count"},
            {"model": model, "metric": "macs", "counter": "thop", "value": gmac, "unit": "GMAC"},
            {"model": model, "metric": "latency_median", "value": 5.0, "unit": "ms", "device": "cpu: Test CPU",
             "threads": 2, "batch": 1, "dtype": "float32"},
        ]
    frame = make_rows(records, dataset=dataset, split="test", date="2024-01-01")
    for model, columns in (extra or {}).items():
        for column, value in columns.items():
            if column not in frame.columns:
                frame[column] = ""
            frame.loc[frame["model"] == model, column] = value
    return frame


def _compile(tex: str, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex not installed in CI")
        pytest.skip("pdflatex not installed")
    (tmp_path / "doc.tex").write_text(tex)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "shown"), [
    ("CVPR18_NYU_V2V_PoseNet", "V2V-PoseNet (CVPR18)"),
    ("ArXiv_ICVL_TriHorn_Net", "TriHorn-Net (arXiv)"),
    ("CVPR18_NYU_denseReg_ori", "DenseReg (CVPR18, original output)"),
    ("CVPR14_LRF_Results", "LRF (CVPR14)"),
    ("a2j", "A2J (ICCV19)"),
    ("v2v", "V2V-PoseNet (CVPR18)"),
    ("handfold", "HandFoldingNet (ICCV21)"),
    ("trinet", "TriHorn-Net (ESWA23)"),
    ("ours", "Ours"),
    ("meanpose", "Mean pose (floor)"),
    ("my_own_file", "my_own_file"),
])
def test_display_names(model, shown):
    assert display_name(model) == shown


def test_tables_show_display_names_and_keep_the_key():
    table = summary_table(rows_of({"CVPR18_NYU_V2V_PoseNet": 8.419, "meanpose": 51.9}), dataset="nyu")
    assert list(table["Method"]) == ["V2V-PoseNet (CVPR18)", "Mean pose (floor)"]
    assert list(table["Model"]) == ["CVPR18_NYU_V2V_PoseNet", "meanpose"]
    assert "Model" not in markdown_table(table)


# --- best, marks, notes -------------------------------------------------------------------------


def test_reference_floor_is_never_best_and_ties_bold_nothing():
    rows = rows_of({"ours": 20.0, "trinet": 30.0, "meanpose": 50.0},
                   costs={"ours": (181_557, 0.272), "trinet": (7_808_953, 0.272), "meanpose": (42, 0.0)})
    table = summary_table(rows, dataset="nyu")
    bold = best_cells(table).set_index(table["Model"])
    assert not bold.loc["meanpose"].any()  # fewest params and MACs, but a floor
    assert bold.loc["ours", "Params (M)"]  # the best among real methods
    assert not bold["MACs thop (G)"].any()  # 0.272 and 0.272: a tie, nothing bold
    assert bold.loc["ours", "Mean error (mm)"]


def test_quick_rows_are_marked_and_never_best(tmp_path):
    extra = {m: {"protocol": "TriHorn-Net (NYU)", "schedule": "quick"} for m in ("ours", "trinet")}
    extra["meanpose"] = {"protocol": "hpbench synthetic", "schedule": "full"}
    rows = rows_of({"ours": 28.4, "trinet": 72.5, "meanpose": 51.9}, extra=extra)
    table = summary_table(rows, dataset="nyu")
    assert not best_cells(table).to_numpy().any()
    latex = latex_table(table, dataset="nyu")
    assert r"Ours\textsuperscript{a,\dag{}}" in latex and r"Mean pose (floor)\textsuperscript{b}" in latex
    assert "a: protocol TriHorn-Net (NYU)" in latex and r"\dag{}: smoke schedule" in latex
    markdown = markdown_table(table)
    assert "Ours<sup>a,†</sup>" in markdown and "†: smoke schedule" in markdown
    _compile("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + latex + "\\end{document}\n",
             tmp_path)


def test_latency_note_names_device_and_threads():
    rows = rows_of({"ours": 8.3}, costs={"ours": (181_557, 0.272)})
    assert table_notes(rows, dataset="nyu") == ["Latency (ms): median on cpu: Test CPU, 2 threads, float32, batch 1."]


# --- standalone documents and comparisons -------------------------------------------------------


def test_standalone_documents_compile(tmp_path):
    rows = rows_of({"ours": 9.0, "CVPR18_NYU_V2V_PoseNet": 8.419, "meanpose": 51.9},
                   costs={"ours": (181_557, 0.272)}, extra={"ours": {"schedule": "quick", "protocol": "x_y"}})
    written = write_report(rows, tmp_path / "out", paper=True, figures=False)
    names = {path.name for path in written}
    assert {"nyu_table_standalone.tex", "nyu_paper_standalone.tex", "nyu_reproduction_standalone.tex"} <= names
    for name in ("nyu_table_standalone.tex", "nyu_paper_standalone.tex", "nyu_reproduction_standalone.tex"):
        text = (tmp_path / "out" / name).read_text()
        assert r"\documentclass" in text and "r@{.}l" in text
        _compile(text, tmp_path)
    assert r"\textbf{8} & \textbf{419}" in (tmp_path / "out" / "nyu_table_standalone.tex").read_text()


def test_a_table_too_wide_for_a_portrait_page_goes_landscape_and_fits(tmp_path):
    """ICVL's DeepPrior files hold 702 of 1,596 frames: their Frames note widens the table past a
    portrait page (124 pt overfull before), so the document turns the page."""
    from hpbench.report.latex import summary_document

    narrow = summary_table(rows_of({"ours": 9.0, "CVPR18_NYU_V2V_PoseNet": 8.419}), dataset="nyu")
    assert "landscape" not in summary_document(narrow, dataset="nyu")
    wide = narrow.copy()
    wide.loc[0, "Frames"] = "702/1596 (test_seq_1, by line count)"
    wide["Method"] = ["SHPR-Net three-view (Access18)", "DeepPrior-Refine (CVWW15)"]
    text = summary_document(wide, dataset="nyu")
    assert "landscape" in text
    _compile(text, tmp_path)
    assert "Overfull" not in (tmp_path / "doc.log").read_text()


def test_reproduction_gap():
    rows = rows_of({"CVPR18_NYU_V2V_PoseNet": 8.419, "v2v": 9.0})
    table, notes = reproduction_table(rows, dataset="nyu")
    v2v = table.set_index("Model").loc["v2v"]
    assert v2v["Paper (mm)"] == 8.42  # V2V-PoseNet's paper, NYU
    assert v2v["Released predictions (mm)"] == 8.419
    assert v2v["This library (mm)"] == 9.0 and v2v["Gap (mm)"] == pytest.approx(0.58)
    assert v2v["Protocol (this library)"] == "V2V-PoseNet (NYU)"
    assert table.set_index("Model").loc["a2j", "Paper (mm)"] == 8.61
    assert any("released predictions" in note for note in notes)


def test_paper_table_quotes_and_footnotes():
    table, notes = paper_table(rows_of({}), dataset="icvl")
    by = table.set_index("Model")
    assert list(by.index) == ["ours", "trinet", "v2v", "a2j", "handfold"]
    assert by.loc["ours", "FLOPs paper (G)"] == 0.27 and by.loc["ours", "Error paper (mm)"] == 6.077
    assert by.loc["a2j", "Params paper (M)"] == 82.01
    assert by.loc["a2j", "Params measured (M)"] == pytest.approx(42.982464)  # ICVL, without the unused fc
    assert by.loc["handfold", "FLOPs paper (G)"] == 35.788
    assert by.loc["handfold", "FLOPs measured (G)"] == pytest.approx(35.788 / 32, abs=1e-3)  # batch 32 in the paper
    a2j_note = next(note for note in notes if "82.01" in note)
    assert "44.74" in a2j_note and a2j_note[:3] in by.loc["a2j", "Method"]
    assert any("batch 32" in note for note in notes)


# --- error against cost --------------------------------------------------------------------------


def test_pareto_front_by_hand():
    errors = np.array([8.0, 7.0, 9.0, 6.0, 7.5, np.nan])
    costs = np.array([1.0, 10.0, 0.5, 40.0, 12.0, 0.1])
    # (0.5, 9) cheapest; (1, 8); (10, 7); (40, 6); (12, 7.5) is beaten by (10, 7); nan error never
    assert pareto_front(errors, costs).tolist() == [True, True, True, True, False, False]


def test_cost_points_mark_quoted_costs_per_sample():
    points = cost_points(rows_of({"CVPR18_NYU_V2V_PoseNet": 8.419}), dataset="icvl").set_index("Model")
    assert points.loc["handfold", "gmac_from"] == "quoted (seed paper)"
    assert points.loc["handfold", "thop MACs (G)"] == pytest.approx(35.788 / 32)
    assert points.loc["ours", "thop MACs (G)"] == 0.27 and points.loc["ours", "Mean error (mm)"] == 6.077


_TWO_RUNTIMES = {  # as `hpbench profile` writes them now (runtime column) and before it had one (in counter)
    "now": [{"device": "cpu: Test CPU", "runtime": "eager", "counter": "eager PyTorch, inference mode"},
            {"device": "cpu: Test CPU", "runtime": "eager fused",
             "counter": "hpbench.fuse.fuse_for_inference, inference mode"}],
    "before": [{"device": "cpu: Test CPU", "counter": "eager: eager PyTorch, inference mode"},
               {"device": "cpu eager fused: Test CPU",
                "counter": "eager fused: hpbench.fuse.fuse_for_inference, inference mode"}],
}


@pytest.mark.parametrize("written", sorted(_TWO_RUNTIMES))
def test_cost_latency_prefers_the_fused_runtime_and_carries_its_reliability(written):
    """Two runtimes of one model: the latency panel uses eager fused, names it with device and threads, and
    keeps the profiler's unreliable flag."""
    rows = rows_of({"ours": 8.6})
    eager, fused = _TWO_RUNTIMES[written]
    extra = make_rows([
        {"metric": "latency_median", "value": 40.0, "unit": "ms", "threads": 2, "source": "reliable", **eager},
        {"metric": "latency_median", "value": 25.0, "unit": "ms", "threads": 2,
         "source": "unreliable: rounds differ 70 %", **fused},
    ], model="ours", dataset="nyu", split="profile", date="2024-01-01")
    point = cost_points(pd.concat([rows, extra], ignore_index=True), dataset="nyu").set_index("Model").loc["ours"]
    assert point["Latency (ms)"] == 25.0
    assert point["runtime"] == "eager fused on cpu: Test CPU, 2 threads"
    assert point["timing"] == "unreliable: rounds differ 70 %"


def test_cost_figure_labels_do_not_collide(tmp_path):
    rows = rows_of({"CVPR18_NYU_V2V_PoseNet": 8.419, "ArXiv_NYU_TriHorn_Net": 7.676, "ours": 8.6},
                   costs={"ours": (181_557, 0.272), "trinet": (7_808_953, 13.432)})
    figure = cost_figure(cost_points(rows, dataset="nyu"), dataset="nyu")
    assert len(figure.axes) == 2 and figure.axes[0].get_xscale() == "log"
    assert figure.get_size_inches()[0] == pytest.approx(6.9)
    renderer = figure.canvas.get_renderer()
    for axes in figure.axes:
        boxes = [text.get_window_extent(renderer) for text in axes.texts]
        assert boxes
        assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_cost_figure_is_laid_out_once_from_building_to_its_files(tmp_path, monkeypatch):
    """The cost figure needs its layout to place labels; saving does not lay it out again (labels stay out of
    the layout), and the saved page keeps every label inside it."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    from hpbench.report.figures import save_figure

    layouts = []
    original = ConstrainedLayoutEngine.execute
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute",
                        lambda self, fig: (layouts.append(1), original(self, fig))[1])
    rows = rows_of({"CVPR18_NYU_V2V_PoseNet": 8.419, "ArXiv_NYU_TriHorn_Net": 7.676, "ours": 8.6},
                   costs={"ours": (181_557, 0.272), "trinet": (7_808_953, 13.432)})
    figure = cost_figure(cost_points(rows, dataset="nyu"), dataset="nyu")
    save_figure(figure, tmp_path / "cost")
    assert len(layouts) == 1
    renderer, page = figure.canvas.get_renderer(), figure.bbox
    for axes in figure.axes:
        for text in axes.texts:
            box = text.get_window_extent(renderer)
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1


def test_write_report_writes_cost_files_and_limits_figure_methods(tmp_path):
    errors = {f"method_{i:02d}": 10.0 + i for i in range(12)}
    errors["ours"] = 30.0
    table = summary_table(rows_of(errors), dataset="nyu")
    shown = figure_methods(table)
    assert len(shown) == 8 and "ours" in shown and "method_11" not in shown
    assert figure_methods(table, methods=["Ours", "method_03"]) == ["method_03", "ours"]
    with pytest.raises(ValueError, match="unknown method"):
        figure_methods(table, methods=["nope"])
    written = {path.name for path in write_report(rows_of(errors), tmp_path, formats=("csv",))}
    assert {"nyu_cost.pdf", "nyu_cost.png", "nyu_cost.csv"} <= written


def test_report_cli_writes_the_paper_layout_and_limits_figures_to_named_methods(tmp_path):
    """`hpbench report --paper --methods A,B`: the paper table files exist, and an unknown method is one line."""
    from typer.testing import CliRunner

    from hpbench.cli import app
    from hpbench.results import make_rows, write_results

    rows = [make_rows([{"metric": "mean_error", "value": value, "unit": "mm"}], model=model, dataset="nyu",
                      split="test") for model, value in [("ours", 9.0), ("trinet", 8.0), ("meanpose", 30.0)]]
    import pandas as pd

    source = write_results(pd.concat(rows, ignore_index=True), tmp_path / "rows.csv")
    result = CliRunner().invoke(app, ["report", str(source), "--out", str(tmp_path / "out"), "--paper",
                                      "--methods", "ours,trinet", "--no-figures", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "nyu_paper.md").is_file()
    bad = CliRunner().invoke(app, ["report", str(source), "--out", str(tmp_path / "out2"), "--methods", "nope"])
    assert bad.exit_code != 0 and "unknown method(s) for the figures: nope" in bad.output
    assert "Traceback" not in bad.output


def test_cost_legend_explains_smoke_schedule_crosses_and_only_drawn_kinds():
    rows = rows_of({"ours": 30.0, "trinet": 80.0}, dataset="synth",
                   costs={"ours": (181_819, 0.273), "trinet": (7_808_953, 13.436)},
                   extra={"ours": {"schedule": "quick"}, "trinet": {"schedule": "quick"}})
    figure = cost_figure(cost_points(rows, dataset="synth"), dataset="synth")
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert labels == ["smoke schedule (--quick), never on the frontier", "Pareto frontier"]


def test_a_floor_without_macs_is_a_level_on_the_mac_panel_and_named_in_the_legend():
    """The mean pose computes nothing (0 MACs): no place on a log axis, so the MAC panel draws its error as a
    dotted level in its colour and the legend says so; the latency panel, where it has a cost, draws a point."""
    rows = rows_of({"ours": 30.0, "meanpose": 58.35}, dataset="synth",
                   costs={"ours": (181_819, 0.273), "meanpose": (42, 0.0)})
    figure = cost_figure(cost_points(rows, dataset="synth"), dataset="synth")
    macs, latency = figure.axes
    levels = [line for line in macs.get_lines() if line.get_linestyle() == ":"]
    assert len(levels) == 1 and set(levels[0].get_ydata()) == {58.35}
    assert not [line for line in latency.get_lines() if line.get_linestyle() == ":"]
    labels = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
    assert "Mean pose (floor): 58.4 mm, no MACs (a level)" in labels


def test_label_obstacles_lie_on_the_drawn_lines():
    """The display points labels keep off follow each line's own transform: a level (axhline, x in axes
    coordinates) spans the axes' width at its height, a post-step line runs along its corners, and nothing lies
    outside the axes (read through the data transform, a level on a log axis began 10^5 px to the left)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hpbench.report.cost import _line_samples

    figure = Figure(figsize=(3.0, 2.0))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    axes.set_xscale("log")
    axes.set_xlim(0.1, 100.0)
    axes.set_ylim(0.0, 100.0)
    axes.axhline(50.0)
    axes.step([0.2, 5.0], [80.0, 20.0], where="post")
    box = axes.get_window_extent()
    (x_02, y_80), (x_5, y_20), (_, y_50) = axes.transData.transform([(0.2, 80.0), (5.0, 20.0), (1.0, 50.0)])
    samples = _line_samples(axes)
    level = samples[np.isclose(samples[:, 1], y_50)]
    assert level[:, 0].min() == pytest.approx(box.x0) and level[:, 0].max() == pytest.approx(box.x1)
    assert np.diff(np.sort(level[:, 0])).max() < 6.0  # narrower than any label: none fits between samples
    top = samples[np.isclose(samples[:, 1], y_80)]
    assert top[:, 0].min() == pytest.approx(x_02) and top[:, 0].max() == pytest.approx(x_5)
    riser = samples[np.isclose(samples[:, 0], x_5) & (samples[:, 1] < y_80)]
    assert riser[:, 1].min() == pytest.approx(y_20)
    assert (samples[:, 0] >= box.x0 - 1e-6).all() and (samples[:, 0] <= box.x1 + 1e-6).all()


def test_label_overlap_test_agrees_with_matplotlib_bbox_overlaps():
    """The vectorized test behind label placement says what ``Bbox.overlaps`` says, touching edges and
    reversed corners included (integer corners on a small grid: many touch)."""
    from matplotlib.transforms import Bbox

    from hpbench.report.cost import _extents, _hits

    rng = np.random.default_rng(0)
    for _ in range(300):
        box, others = rng.integers(0, 6, 4).astype(float), rng.integers(0, 6, (3, 4)).astype(float)
        expected = any(Bbox.from_extents(*box).overlaps(Bbox.from_extents(*other)) for other in others)
        assert _hits(_extents(box)[0], _extents(others)) == expected

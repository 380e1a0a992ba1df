"""Tests of hpbench.report: summary tables, their LaTeX/Markdown/CSV renderings, figures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpbench import metrics
from hpbench.report import latex_table, markdown_table, summary_table, write_report
from hpbench.report.tables import best_cells, visible
from hpbench.results import make_rows, read_results, write_results

NYU_JOINTS = (
    "pinky tip", "pinky mid", "ring tip", "ring mid", "middle tip", "middle mid", "index tip", "index mid",
    "thumb tip", "thumb mid", "thumb root", "wrist back", "wrist", "palm",
)
ICVL_JOINTS = ("palm",) + tuple(
    f"{finger} {part}" for finger in ("thumb", "index", "middle", "ring", "pinky") for part in ("root", "mid", "tip")
)
# Names with LaTeX/Markdown specials, as in the community's prediction files.
SPECIAL_NAMES = (
    "ICCV17_NYU_Deep++_X", "A&B_net", "50%_hand", "Hand#Net", "x^2~y", "$cash{}", "back\\slash", "pipe|net<1>",
)


def method_names(count: int) -> list[str]:
    base = [*SPECIAL_NAMES, *(f"ICCV17_method_{i:02d}" for i in range(count))]
    return base[:count]


def fake_rows(
    count: int, *, dataset: str = "nyu", joints: tuple[str, ...] = NYU_JOINTS, frames: int = 120, seed: int = 0
) -> pd.DataFrame:
    """Results rows of ``count`` fake methods built like hpbench.scoring.Score.rows (errors 5-30 mm)."""
    rng = np.random.default_rng(seed)
    parts = []
    for index, name in enumerate(method_names(count)):
        scale = rng.uniform(5.0, 30.0)
        errors = rng.gamma(4.0, scale / 4.0, size=(frames, len(joints))) * rng.uniform(0.6, 1.4, size=len(joints))
        records: list[dict[str, object]] = [
            {"metric": "mean_error", "value": metrics.mean_error_mm(errors), "unit": "mm"}
        ]
        records += [
            {"metric": "joint_error", "joint": joint, "value": value, "unit": "mm"}
            for joint, value in zip(joints, metrics.per_joint_error_mm(errors), strict=True)
        ]
        for criterion in ("max", "mean"):
            curve = metrics.success_rate(errors, criterion=criterion)
            records += [
                {"metric": f"success_rate_{criterion}", "threshold_mm": t, "value": r, "unit": "fraction"}
                for t, r in zip(metrics.THRESHOLDS_MM, curve, strict=True)
            ]
            area = metrics.auc(metrics.THRESHOLDS_MM, curve)
            records.append({"metric": f"auc_{criterion}", "value": area, "unit": "fraction"})
        note = f"{frames}/{frames}" if index % 2 else f"{frames}/{2 * frames} (test_seq_1)"
        parts.append(
            make_rows(records, model=name, dataset=dataset, split="test", n=frames, frames=note, date="2024-01-01")
        )
    return pd.concat(parts, ignore_index=True)


def cost_rows(models: list[str], *, dataset: str = "nyu", seed: int = 1) -> pd.DataFrame:
    """Params (count), MACs of two counters (GMAC) and CPU latency (ms) of each model."""
    rng = np.random.default_rng(seed)
    records = []
    for model in models:
        records += [
            {"model": model, "metric": "params", "value": float(rng.integers(200_000, 60_000_000)), "unit": "count"},
            {"model": model, "metric": "macs", "counter": "thop", "value": rng.uniform(0.1, 20.0), "unit": "GMAC"},
            {"model": model, "metric": "macs", "counter": "flop_counter", "value": rng.uniform(0.1, 20.0),
             "unit": "GMAC"},
            {"model": model, "metric": "latency_median", "value": rng.uniform(1.0, 90.0), "unit": "ms",
             "device": "cpu", "batch": 1, "threads": 2},
        ]
    return make_rows(records, dataset=dataset, split="test", date="2024-01-01")


def value_of(rows: pd.DataFrame, model: str, metric: str, threshold_mm: float | None = None) -> float:
    mine = rows[(rows["model"] == model) & (rows["metric"] == metric)]
    if threshold_mm is not None:
        mine = mine[np.isclose(mine["threshold_mm"], threshold_mm)]
    assert len(mine) == 1
    return float(mine["value"].iloc[0])


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    nyu, icvl = fake_rows(9, dataset="nyu"), fake_rows(4, dataset="icvl", joints=ICVL_JOINTS, seed=3)
    return pd.concat([nyu, icvl], ignore_index=True)


@pytest.fixture(scope="module")
def report_dirs(rows, tmp_path_factory) -> tuple[Path, Path]:
    first, second = tmp_path_factory.mktemp("report_a"), tmp_path_factory.mktemp("report_b")
    write_report(rows, first)
    write_report(rows, second)
    return first, second


# --- summary table -----------------------------------------------------------------------------


def test_summary_table_order_and_values(rows):
    table = summary_table(rows, dataset="nyu")
    nyu = rows[rows["dataset"] == "nyu"]
    assert list(table.columns) == [
        "Method", "Mean error (mm)", "SR@20mm (%)", "SR@40mm (%)", "AUC 0-80mm (%)", "Frames", "Model",
    ]
    assert sorted(table["Model"]) == sorted(method_names(9))
    assert table["Mean error (mm)"].is_monotonic_increasing
    for _, row in table.iterrows():
        model = row["Model"]
        assert row["Mean error (mm)"] == value_of(nyu, model, "mean_error")
        assert row["SR@20mm (%)"] == pytest.approx(100 * value_of(nyu, model, "success_rate_max", 20.0), abs=1e-12)
        assert row["SR@40mm (%)"] == pytest.approx(100 * value_of(nyu, model, "success_rate_max", 40.0), abs=1e-12)
        assert row["AUC 0-80mm (%)"] == pytest.approx(100 * value_of(nyu, model, "auc_max"), abs=1e-12)
        assert row["Frames"] == nyu.loc[nyu["model"] == model, "frames"].iloc[0]


def test_summary_table_only_has_the_datasets_methods(rows):
    assert len(summary_table(rows, dataset="icvl")) == 4
    with pytest.raises(ValueError, match="icvl, nyu"):
        summary_table(rows, dataset="msra")


def test_summary_table_survives_a_csv_round_trip(rows, tmp_path):
    again = read_results([write_results(rows, tmp_path / "rows.csv")])
    pd.testing.assert_frame_equal(summary_table(again, dataset="nyu"), summary_table(rows, dataset="nyu"), rtol=1e-8)


def test_duplicate_results_are_refused(rows):
    one = rows[(rows["dataset"] == "nyu") & (rows["model"] == method_names(1)[0])]
    with pytest.raises(ValueError, match="several mean_error rows"):
        summary_table(pd.concat([rows, one], ignore_index=True), dataset="nyu")


def test_wrong_unit_is_refused(rows):
    bad = rows.copy()
    bad.loc[bad["metric"] == "mean_error", "unit"] = "m"
    with pytest.raises(ValueError, match="expected 'mm'"):
        summary_table(bad, dataset="nyu")


def test_cost_columns_only_when_cost_rows_exist(rows):
    nyu = rows[rows["dataset"] == "nyu"]
    assert not any(header.startswith(("Params", "MACs", "Latency")) for header in summary_table(nyu, dataset="nyu"))
    costs = cost_rows(method_names(9))
    table = summary_table(pd.concat([nyu, costs], ignore_index=True), dataset="nyu")
    cost_headers = ["Params (M)", "MACs thop (G)", "MACs flop_counter (G)", "Latency (ms)"]
    assert list(table.columns[6:]) == [*cost_headers, "Model"]
    for _, row in table.iterrows():
        model = row["Model"]
        assert row["Params (M)"] == value_of(costs, model, "params") / 1e6  # exact: no 1e-6 rounding noise
        mine = costs[(costs["model"] == model) & (costs["metric"] == "macs")]
        assert row["MACs thop (G)"] == mine.loc[mine["counter"] == "thop", "value"].iloc[0]
        assert row["Latency (ms)"] == value_of(costs, model, "latency_median")
    # best = lowest cost: bold in both renderings
    best_model = table.loc[table["Params (M)"].idxmin(), "Model"]
    assert best_cells(table).loc[table["Model"] == best_model, "Params (M)"].item()
    markdown = markdown_table(table)
    assert "Latency (ms)" in markdown and "Latency (ms)" in latex_table(table, dataset="nyu")


def test_cost_rows_without_dataset_apply_and_two_devices_make_two_columns(rows):
    nyu = rows[rows["dataset"] == "nyu"]
    models = method_names(9)
    generic = cost_rows(models, dataset="")
    gpu = make_rows(
        [{"model": m, "metric": "latency_median", "value": 0.5, "unit": "s", "device": "cuda", "batch": 1, "threads": 2}
         for m in models],
        dataset="nyu", date="2024-01-01",
    )
    table = summary_table(pd.concat([nyu, generic, gpu], ignore_index=True), dataset="nyu")
    assert {"Params (M)", "Latency cpu (ms)", "Latency cuda (ms)"} <= set(table.columns)
    assert (table["Latency cuda (ms)"] == 500.0).all()  # seconds converted to ms


# --- renderings ---------------------------------------------------------------------------------

_UNESCAPED_AMP = re.compile(r"(?<!\\)&")


def _latex_rows(text: str) -> tuple[str, list[str]]:
    """(header line, data lines) of a booktabs tabular."""
    lines = text.splitlines()
    top, mid, bottom = lines.index("\\toprule"), lines.index("\\midrule"), lines.index("\\bottomrule")
    assert top < mid < bottom
    assert mid == top + 2
    return lines[top + 1], lines[mid + 1 : bottom]


def test_latex_structure(rows, report_dirs):
    text = (report_dirs[0] / "nyu_table.tex").read_text()
    table = summary_table(rows, dataset="nyu")
    assert text.startswith("% Generated by hpbench") and "dataset nyu" in text.splitlines()[0]
    assert text.count("\\begin{tabular}") == 1 and text.count("\\end{tabular}") == 1
    assert "\\begin{table}" not in text and "\\caption" not in text
    header, data = _latex_rows(text)
    assert len(data) == len(table)
    assert all(line.endswith("\\\\") for line in [header, *data])
    assert "(\\%)" in header and "(%)" not in header
    amps = len(_UNESCAPED_AMP.findall(header))
    assert amps == len(visible(table).columns) - 1
    assert all(len(_UNESCAPED_AMP.findall(line)) == amps for line in data)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
    assert not re.search(r"(?<!\\)_", body), "unescaped underscore"
    assert "ICCV17\\_NYU\\_Deep++\\_X" in body and "A\\&B\\_net" in body and "50\\%\\_hand" in body
    assert "back\\textbackslash{}slash" in body and "pipe\\textbar{}net\\textless{}1\\textgreater{}" in body
    assert "\\$cash\\{\\}" in body and "x\\textasciicircum{}2\\textasciitilde{}y" in body
    # exactly the lowest mean error is bold, in its row
    cells = [_UNESCAPED_AMP.split(line) for line in data]
    mean_cells = [row[1].strip() for row in cells]
    bold = [i for i, cell in enumerate(mean_cells) if cell.startswith("\\textbf{")]
    assert bold == [int(table["Mean error (mm)"].idxmin())] == [0]
    assert mean_cells[0] == f"\\textbf{{{table['Mean error (mm)'].iloc[0]:.3f}}}"
    assert mean_cells[1] == f"{table['Mean error (mm)'].iloc[1]:.3f}"  # 3 decimals for mm
    best_sr = int(table["SR@20mm (%)"].round(1).idxmax())
    assert cells[best_sr][2].strip() == f"\\textbf{{{table['SR@20mm (%)'].iloc[best_sr]:.1f}}}"  # highest, 1 decimal


def test_latex_compiles(report_dirs, tmp_path):
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):  # .ci/run installs TeX: a skip there would hide a broken table
            pytest.fail("pdflatex not installed in CI (.ci/run installs texlive-latex-recommended)")
        pytest.skip("pdflatex not installed")
    shutil.copy(report_dirs[0] / "nyu_table.tex", tmp_path / "table.tex")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\begin{table}\\input{table}\\end{table}\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").read_bytes().startswith(b"%PDF")


def test_markdown_table(rows, report_dirs):
    table = summary_table(rows, dataset="nyu")
    lines = [line for line in (report_dirs[0] / "nyu_table.md").read_text().splitlines() if line.startswith("|")]
    assert len(lines) == 2 + len(table)
    header, separator, data = lines[0], lines[1], lines[2:]
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(visible(table).columns)
    assert re.fullmatch(r"\|(:?-+:?\|)+", separator) and separator.count("|") == header.count("|")
    assert all(line.count(" | ") == header.count(" | ") for line in data)  # '|' in names would be escaped
    assert "ICCV17\\_NYU\\_Deep++\\_X" in "\n".join(data) and "pipe\\|net\\<1\\>" in "\n".join(data)
    best = int(table["Mean error (mm)"].idxmin())
    for i, line in enumerate(data):
        mean_cell = line.split(" | ")[1].strip()
        expected = f"{table['Mean error (mm)'].iloc[i]:.3f}"
        assert mean_cell == (f"**{expected}**" if i == best else expected)


def test_csv_keeps_full_precision(rows, report_dirs):
    again = pd.read_csv(report_dirs[0] / "nyu_table.csv", keep_default_na=False)
    table = summary_table(rows, dataset="nyu")
    np.testing.assert_array_equal(again["Mean error (mm)"].to_numpy(), table["Mean error (mm)"].to_numpy())
    assert list(again["Method"]) == list(table["Method"])


def test_write_report_files_and_formats(rows, report_dirs, tmp_path):
    expected = sorted(
        f"{d}_{kind}" for d in ("icvl", "nyu") for kind in (
            "table.tex", "table.md", "table.csv", "table_standalone.tex", "success_rate.pdf", "success_rate.png",
            "joint_error.pdf", "joint_error.png", "reproduction.tex", "reproduction.md", "reproduction.csv",
            "reproduction_standalone.tex", "cost.pdf", "cost.png", "cost.csv",
        )
    )
    assert sorted(p.name for p in report_dirs[0].iterdir()) == expected
    written = write_report(rows, tmp_path / "only_md", formats=("markdown",), figures=False)
    assert written == sorted(written)
    assert [p.name for p in written] == ["icvl_reproduction.md", "icvl_table.md", "nyu_reproduction.md", "nyu_table.md"]
    with pytest.raises(ValueError, match="unknown report format"):
        write_report(rows, tmp_path / "bad", formats=("html",))


# --- figures ------------------------------------------------------------------------------------


def test_figures_are_real_images(report_dirs):
    from matplotlib.image import imread

    for name in ("nyu_success_rate", "nyu_joint_error", "icvl_success_rate", "icvl_joint_error"):
        assert (report_dirs[0] / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        image = imread(report_dirs[0] / f"{name}.png")
        assert image.ndim == 3 and image.shape[2] in (3, 4)
        assert 300 <= image.shape[0] <= 4000 and 500 <= image.shape[1] <= 8000
        packed = (np.round(image[::3, ::3, :3] * 255).astype(np.int64) @ np.array([1, 256, 65536])).ravel()
        assert len(np.unique(packed)) > 20, f"{name} is (nearly) one colour"


def test_figures_are_byte_identical_across_runs(report_dirs):
    first, second = report_dirs
    for path in sorted(first.iterdir()):
        assert path.read_bytes() == (second / path.name).read_bytes(), path.name


def test_success_rate_figure_has_one_line_per_method_in_percent(rows):
    from hpbench.report.figures import success_rate_figure

    figure = success_rate_figure(rows, dataset="nyu")
    axes = figure.axes[0]
    assert len(axes.lines) == 9
    assert axes.get_ylim() == (0.0, 100.0)
    table = summary_table(rows, dataset="nyu")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == list(table["Method"])  # ranked like the table
    best = axes.lines[0].get_ydata()
    assert best[20] == pytest.approx(table["SR@20mm (%)"].iloc[0])
    styles = {(tuple(line.get_color()), str(line.get_linestyle()), line.get_marker()) for line in axes.lines}
    assert len(styles) == 9


def test_joint_error_figure_keeps_joint_order(rows):
    from hpbench.report.figures import joint_error_figure

    figure = joint_error_figure(rows, dataset="icvl")
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == list(ICVL_JOINTS)
    (bars,) = figure.axes[0].collections
    assert len(bars.get_paths()) == 4 * len(ICVL_JOINTS)
    table = summary_table(rows, dataset="icvl")
    icvl = rows[rows["dataset"] == "icvl"]
    best = icvl[(icvl["model"] == table["Model"].iloc[0]) & (icvl["metric"] == "joint_error")]
    heights = [path.vertices[:, 1].max() for path in bars.get_paths()[: len(ICVL_JOINTS)]]  # first method's bars
    np.testing.assert_allclose(heights, best["value"].to_numpy())


def test_many_methods_get_distinct_styles_and_taller_not_wider_figures():
    from hpbench.report.figures import method_styles, success_rate_figure

    styles = method_styles(30)
    assert len({(tuple(s["color"]), str(s["linestyle"]), s["marker"]) for s in styles}) == 30
    assert len({tuple(np.round(s["color"], 3)) for s in styles}) == 30
    few = success_rate_figure(fake_rows(3), dataset="nyu").get_size_inches()
    many = success_rate_figure(fake_rows(30), dataset="nyu").get_size_inches()
    assert many[0] == few[0] == 3.3  # a single column, whatever the legend holds
    assert many[1] > few[1]


def test_up_to_ten_methods_take_seaborns_colour_blind_palette():
    import seaborn as sns

    from hpbench.report.figures import method_styles

    palette = [tuple(float(c) for c in rgb) for rgb in sns.color_palette("colorblind", 8)]
    assert [style["color"] for style in method_styles(8)] == palette


def test_report_of_25_methods_is_fast(tmp_path):
    rows = pd.concat([fake_rows(25), cost_rows(method_names(25))], ignore_index=True)
    start = time.perf_counter()
    written = write_report(rows, tmp_path)
    elapsed = time.perf_counter() - start
    assert len(written) == 15
    assert elapsed < 10.0, f"report of 25 methods took {elapsed:.1f} s"


def test_missing_numbers_render_as_dashes_and_frames_fall_back_to_n(tmp_path):
    scored = fake_rows(3)
    scored.loc[scored["model"] == method_names(3)[1], "frames"] = ""
    profiled_only = make_rows(
        [{"model": "cost_only_net", "metric": "params", "value": 1e6, "unit": "count"}],
        dataset="nyu", date="2024-01-01",
    )
    rows = pd.concat([scored, profiled_only], ignore_index=True)
    table = summary_table(rows, dataset="nyu")
    assert table["Method"].iloc[-1] == "cost_only_net" and np.isnan(table["Mean error (mm)"].iloc[-1])
    assert table.set_index("Method").loc[method_names(3)[1], "Frames"] == "120"
    assert table["Params (M)"].isna().sum() == 3
    _, data = _latex_rows(latex_table(table, dataset="nyu"))
    assert _UNESCAPED_AMP.split(data[-1])[1].strip() == "--"
    assert markdown_table(table).splitlines()[-1].split(" | ")[1].strip() == "-"
    written = write_report(rows, tmp_path)
    assert len(written) == 15  # the cost-only method is simply absent from the figures

"""Report figures as a paper needs them (issue 18): single/double-column widths, 8 pt text, TrueType
fonts, byte-reproducible files; per-joint error distributions drawn from the scores (no re-reading);
seaborn and matplotlib kept out of the command line's start-up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpbench.data.specs import get_dataset
from hpbench.report import write_report
from hpbench.scoring import Score, score_rows

SINGLE_PT, DOUBLE_PT = 3.3 * 72, 6.9 * 72  # 237.6 and 496.8 pt


def fake_scores(count: int, *, dataset: str = "nyu", frames: int = 300, seed: int = 0) -> list[Score]:
    """Scores of ``count`` methods with gamma-distributed errors (mm), built as hpbench.scoring builds them."""
    rng = np.random.default_rng(seed)
    spec = get_dataset(dataset)
    scores = []
    for index in range(count):
        errors = rng.gamma(3.0, rng.uniform(2.0, 6.0), size=(frames, spec.num_joints))
        scores.append(Score(method=f"method_{index:02d}", source=Path(f"method_{index:02d}.txt"), dataset=spec,
                            errors_mm=errors, frame_indices=np.arange(frames), frames=f"{frames}/{frames}",
                            reading="uvd"))
    return scores


def _report(out: Path, scores: list[Score], **options) -> list[Path]:
    return write_report(score_rows(scores), out, formats=("csv",), scores=scores, **options)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> tuple[Path, Path, list[Score]]:
    scores = fake_scores(10) + fake_scores(3, dataset="icvl", seed=1)
    first, second = tmp_path_factory.mktemp("figures_a"), tmp_path_factory.mktemp("figures_b")
    _report(first, scores)
    _report(second, scores)
    return first, second, scores


def _media_box(pdf: bytes) -> tuple[float, float]:
    match = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert match, "no MediaBox"
    return float(match[1]), float(match[2])


def test_figures_exist_and_are_byte_reproducible(reports):
    first, second, _ = reports
    figures = sorted(path.name for path in first.iterdir() if path.suffix in (".pdf", ".png"))
    for dataset in ("icvl", "nyu"):
        for kind in ("success_rate", "joint_error", "joint_distribution"):
            assert f"{dataset}_{kind}.pdf" in figures and f"{dataset}_{kind}.png" in figures
    for name in figures:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_pdf_fonts_are_embedded_truetype_not_type3(reports):
    for path in sorted(reports[0].glob("*.pdf")):
        pdf = path.read_bytes()
        assert b"/FontFile2" in pdf, f"{path.name}: no embedded TrueType font"
        assert b"/Type3" not in pdf, f"{path.name}: Type 3 font"


@pytest.mark.parametrize(("kind", "width_pt"), [
    ("success_rate", SINGLE_PT), ("joint_error", DOUBLE_PT), ("joint_distribution", DOUBLE_PT),
])
def test_figures_are_a_single_or_double_column_wide(reports, kind, width_pt):
    for dataset in ("icvl", "nyu"):
        width, height = _media_box((reports[0] / f"{dataset}_{kind}.pdf").read_bytes())
        assert width == pytest.approx(width_pt, abs=0.01)
        assert 100 < height < 6 * 72


def test_all_text_is_8_pt(reports):
    from matplotlib.text import Text

    from hpbench.report.figures import joint_distribution_figure, joint_error_figure, success_rate_figure

    scores = reports[2][:10]
    rows = score_rows(scores)
    figures = [success_rate_figure(rows, dataset="nyu"), joint_error_figure(rows, dataset="nyu"),
               joint_distribution_figure({s.method: s.errors_mm for s in scores},
                                         joints=get_dataset("nyu").joint_names)]
    for figure in figures:
        sizes = {text.get_fontsize() for text in figure.findobj(Text) if text.get_text()}
        assert sizes == {8.0}


def test_figures_show_at_most_eight_methods_by_default_and_the_ones_asked_for(tmp_path):
    from matplotlib.image import imread

    from hpbench.report.figures import joint_distribution_figure

    scores = fake_scores(12)
    written = {path.name for path in _report(tmp_path / "default", scores)}
    assert "nyu_joint_distribution.pdf" in written
    image = imread(tmp_path / "default" / "nyu_joint_distribution.png")
    assert image.shape[1] == round(6.9 * 200)  # 200 dpi
    errors = {s.method: s.errors_mm for s in scores}
    figure = joint_distribution_figure(errors, joints=get_dataset("nyu").joint_names,
                                       order=["method_03", "method_01"])
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend[:2] == ["method_03", "method_01"] and len(legend) == 12
    chosen = _report(tmp_path / "chosen", scores, methods=["method_05", "method_07"])
    assert any(path.name == "nyu_joint_distribution.png" for path in chosen)


def test_no_per_frame_errors_no_distribution_figure(tmp_path):
    scores = fake_scores(3)
    written = {path.name for path in write_report(score_rows(scores), tmp_path, formats=("csv",))}
    assert "nyu_joint_error.pdf" in written and not any("distribution" in name for name in written)


def test_box_statistics_from_101_percentiles_equal_those_of_every_frame():
    """The distribution figure draws each box from 101 percentiles instead of every frame: the
    median, quartiles and 5/95 % bounds (matplotlib's boxplot_stats, which seaborn's boxplot uses) agree."""
    from matplotlib.cbook import boxplot_stats

    from hpbench.report.figures import BOX_PERCENTILES

    rng = np.random.default_rng(4)
    for size in (7, 100, 8252):
        errors = rng.gamma(2.0, 5.0, size=size)
        full = boxplot_stats(errors, whis=(5, 95))[0]
        summary = boxplot_stats(np.percentile(errors, BOX_PERCENTILES), whis=(5, 95))[0]
        for key in ("med", "q1", "q3"):
            assert summary[key] == pytest.approx(full[key], rel=1e-12, abs=1e-12), key
        low, high = np.percentile(errors, [5, 95])
        assert summary["whislo"] == pytest.approx(low) and summary["whishi"] == pytest.approx(high)
        # every frame: the whiskers end at the last frame inside those bounds
        assert low <= full["whislo"] and full["whishi"] <= high


def _modules_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                          capture_output=True, text=True, check=True, timeout=120)
    return set(done.stdout.split())


def test_command_line_and_scoring_imports_stay_light():
    """`hpbench --help` and `hpbench eval` import neither seaborn nor matplotlib (nor scipy.optimize)."""
    for code in ("import hpbench.cli", "import hpbench.cli, hpbench.scoring, hpbench.predictions"):
        loaded = _modules_after(code)
        heavy = {name for name in loaded if name.split(".")[0] in ("seaborn", "matplotlib")}
        assert not heavy, f"{code}: {sorted(heavy)[:5]}"
        assert "scipy.optimize" not in loaded


def test_saving_draws_each_file_once_after_one_layout(tmp_path, monkeypatch):
    """PDF and PNG cost one draw each (matplotlib draws twice per save while a figure holds a layout engine,
    even the placeholder that set_layout_engine("none") leaves), and the layout done once keeps all text on
    the page."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from hpbench.report.figures import _style_context, save_figure, success_rate_figure

    figure = success_rate_figure(score_rows(fake_scores(8)), dataset="nyu")
    draws = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(type(renderer).__name__),
                                                                original(self, renderer))[1])
    save_figure(figure, tmp_path / "curve")
    assert draws == ["MixedModeRenderer", "RendererAgg"]  # the PDF backend draws through a MixedModeRenderer
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    with _style_context():
        canvas.draw()  # at the figure's own dpi, as figure.bbox; draws place the legend's texts
    renderer, page = canvas.get_renderer(), figure.bbox
    for text in figure.findobj(Text):
        if text.get_text() and text.get_visible():
            box = text.get_window_extent(renderer)
            inside = page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1
            assert inside, text.get_text()


def _pdf_streams(pdf: bytes) -> tuple[list[bytes], list[bytes]]:
    """The decompressed streams of a matplotlib PDF: (TrueType font programs, all others)."""
    import zlib

    fonts, others = [], []
    for match in re.finditer(rb"stream\n(.*?)\nendstream", pdf, re.DOTALL):
        data = zlib.decompress(match[1])
        (fonts if data[:4] in (b"\x00\x01\x00\x00", b"true") else others).append(data)
    return fonts, others


def test_pdf_font_subsets_leave_out_layout_tables_and_draw_the_same_page(tmp_path):
    """The embedded subsets lack GSUB/GPOS/... (fontTools spends most of a PDF's time subsetting them), while
    the pages are the same: every non-font stream byte-identical, every glyph's outline and advance equal to
    those of matplotlib's own subset; matplotlib is left as it was."""
    import io

    from fontTools import subset as fonttools_subset
    from fontTools.ttLib import TTFont
    from matplotlib.backends import _backend_pdf_ps

    from hpbench.report.figures import LAYOUT_TABLES, _style_context, save_figure, success_rate_figure

    figure = success_rate_figure(score_rows(fake_scores(4)), dataset="nyu")
    figure.axes[0].set_title("office fi AV T\u00e5 \u2264 3\u03c3")  # ligature, kerning and non-Latin candidates
    ours = save_figure(figure, tmp_path / "lean")[0]
    assert _backend_pdf_ps.subset is fonttools_subset
    plain = tmp_path / "plain.pdf"
    with _style_context():
        figure.savefig(plain, format="pdf", metadata={"Creator": f"hpbench {__import__('hpbench').__version__}",
                                                      "Producer": None, "CreationDate": None, "ModDate": None})
    (lean_fonts, lean_rest), (full_fonts, full_rest) = _pdf_streams(ours.read_bytes()), _pdf_streams(plain.read_bytes())
    assert lean_rest == full_rest and len(lean_fonts) == len(full_fonts) >= 1
    assert any({"GSUB", "GPOS"} <= set(TTFont(io.BytesIO(data)).keys()) for data in full_fonts)  # what is saved
    for lean_data, full_data in zip(lean_fonts, full_fonts, strict=True):
        lean, full = TTFont(io.BytesIO(lean_data)), TTFont(io.BytesIO(full_data))
        assert not ({"GSUB", "GPOS", "GDEF", "MATH"} | set(LAYOUT_TABLES)) & set(lean.keys())
        order = lean.getGlyphOrder()  # the full subset may append glyphs its MATH table reaches: never drawn
        assert len(order) > 4 and full.getGlyphOrder()[: len(order)] == order
        assert lean["cmap"].getBestCmap() == full["cmap"].getBestCmap()
        for name in order:
            assert lean["hmtx"][name] == full["hmtx"][name], name
            assert (lean["glyf"][name].compile(lean["glyf"]) == full["glyf"][name].compile(full["glyf"])), name


def test_png_figures_are_compressed_at_a_fast_zlib_level(reports):
    """RFC 1950: the zlib header's FLEVEL bits say 0 fastest, 1 fast (levels 2-5), 2 default (6), 3 maximum.
    A fast level encodes these flat-colour plots 30 % sooner into files no larger."""
    import struct

    for path in sorted(reports[0].glob("*.png")):
        data = path.read_bytes()
        start = data.index(b"IDAT") + 4  # the first IDAT chunk's data opens the zlib stream
        cmf, flg = data[start], data[start + 1]
        assert cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0, path.name  # deflate, a valid header
        assert flg >> 6 == 1, f"{path.name}: FLEVEL {flg >> 6}"
        assert struct.unpack(">I", data[start - 8:start - 4])[0] > 0

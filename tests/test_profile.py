"""The profiler's counters pinned against hand computations, and honest latency records."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from hpbench.profile import (
    count_macs,
    count_parameters,
    exact_macs,
    fvcore_macs,
    measure_latency,
    profile_models,
    profile_report,
    profile_rows,
    summarize_rounds,
    thop_macs,
    unused_parameters,
)


class MatmulAttention(nn.Module):
    """Tokens of a 16x16 grid attend to each other through functional matmuls."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)  # (B, C, N) each
        scores = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)  # (B, N, N)
        return (v @ scores.transpose(1, 2)).view(b, c, h, w)


# Hand computation at input 1 x 16 x 32 x 32 (MACs, no bias):
CONV = 16 * 32 * 3 * 3 * 32 * 32           # Conv2d 16->32 3x3 @32^2: 4,718,592
DECONV = 32 * 16 * 2 * 2 * 32 * 32          # ConvTranspose2d 32->16 k2 s2 on a 32^2 input: 2,097,152
DECONV_THOP = 16 * 64 * 64 * 32 * 2 * 2     # thop: output volume x (c_in k^2) = 4 x the true count
POOL_TO_16 = 0
QKV = 16 * 48 * 16 * 16                     # 1x1 conv 16 -> 48 on 16^2
ATTENTION = 2 * 256 * 256 * 16              # Q^T K and V S^T: N x N x C each


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.deconv = nn.ConvTranspose2d(32, 16, 2, stride=2, bias=False)
        self.pool = nn.AvgPool2d(4)
        self.attention = MatmulAttention(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.pool(self.deconv(self.conv(x))))


@pytest.fixture(scope="module")
def toy_counts():
    return count_macs(Toy(), torch.zeros(1, 16, 32, 32))


def test_exact_counter_matches_the_hand_count(toy_counts):
    assert toy_counts.exact == CONV + DECONV + QKV + ATTENTION
    assert toy_counts.exact_by_op["convolution"] == CONV + DECONV + QKV
    assert toy_counts.exact_by_op["bmm"] == ATTENTION


def test_thop_counts_deconv_by_output_volume_and_misses_matmul(toy_counts):
    pooled = 16 * 16 * 16  # thop's AvgPool2d: one per output element (plus kernel ops in some versions)
    assert toy_counts.thop - (CONV + DECONV_THOP + QKV) in range(0, 4 * pooled + 1)
    assert "thop counts transposed convs by output volume (k^d / s^d too many)" in toy_counts.notes
    assert toy_counts.disagree


def test_fvcore_counts_matmul_and_true_deconv(toy_counts):
    if toy_counts.fvcore is None:
        pytest.skip("fvcore not installed")
    assert toy_counts.fvcore == CONV + DECONV + QKV + ATTENTION
    assert "aten::softmax" in toy_counts.fvcore_skipped


def test_thop_misses_functional_matmul_note():
    counts = count_macs(MatmulAttention(16), torch.zeros(1, 16, 16, 16), fvcore=False)
    assert counts.thop == QKV and counts.exact == QKV + ATTENTION
    assert any("misses functional matmul" in note for note in counts.notes)


def test_cpu_sdpa_is_counted_exactly():
    class SDPA(nn.Module):
        def forward(self, x):
            return nn.functional.scaled_dot_product_attention(x, x, x)

    batch, heads, tokens, dim = 1, 2, 64, 16
    assert exact_macs(SDPA(), torch.zeros(batch, heads, tokens, dim)) == 2 * batch * heads * tokens * tokens * dim


def test_counters_do_not_touch_the_model():
    model = Toy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    thop_macs(model, torch.zeros(1, 16, 32, 32))
    fvcore_macs(model, torch.zeros(1, 16, 32, 32))
    assert set(model.state_dict()) == set(before)  # thop would add total_ops/total_params buffers
    assert model.training


class WithUnused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 3)
        self.unused = nn.Linear(10, 10)
        self.shared = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.shared(self.used(x)))


def test_parameters_and_unused_parameters():
    model = WithUnused()
    assert count_parameters(model) == (4 * 3 + 3) + (10 * 10 + 10) + (3 * 3 + 3)
    assert unused_parameters(model, torch.zeros(1, 4)) == ["unused.weight", "unused.bias"]
    model.unused.weight.requires_grad_(False)
    assert count_parameters(model) == (4 * 3 + 3) + 10 + (3 * 3 + 3)
    assert unused_parameters(nn.Linear(3, 3), torch.zeros(1, 4)) is None  # cannot run: unknown, not "none unused"


def test_latency_is_recorded_with_its_environment():
    threads_before = torch.get_num_threads()
    latency = measure_latency(nn.Conv2d(1, 8, 3), torch.zeros(2, 1, 64, 64), threads=1, min_run_time_s=0.1)
    assert torch.get_num_threads() == threads_before
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms
    assert latency.batch == 2 and latency.env.threads == 1 and latency.env.dtype == "float32"
    assert latency.env.torch == torch.__version__ and latency.env.device == "cpu" and latency.env.device_name
    assert latency.throughput == pytest.approx(2000 / latency.median_ms)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_latency_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no GPU"):
        measure_latency(nn.Linear(2, 2), torch.zeros(1, 2), device="cuda")


def test_profile_rows_and_rounds_for_registered_models():
    profiles = profile_models(["tinycnn", "meanpose"], dataset="icvl", rounds=2, min_run_time_s=0.05,
                              throughput_batch=4, fvcore=False)
    tiny = profiles[0]
    assert tiny.params == tiny.declared_params == 63520 and tiny.unused == ()
    assert len(tiny.latency["cpu"]) == 2
    rows = profile_rows(profiles)
    macs = rows[(rows["model"] == "tinycnn") & (rows["metric"] == "macs")].set_index("counter")["value"]
    assert macs["thop"] == pytest.approx(tiny.macs.thop / 1e9) and set(macs.index) == {"thop", "exact"}
    latency = rows[(rows["model"] == "tinycnn") & (rows["metric"] == "latency_median")].iloc[0]
    assert latency["unit"] == "ms" and latency["threads"] == torch.get_num_threads() and latency["batch"] == 1
    assert latency["value"] == pytest.approx(summarize_rounds(tiny.latency["cpu"])["median_ms"])
    assert rows.loc[rows["metric"] == "throughput", "batch"].tolist() == [4, 4]


def test_profile_report_puts_the_reference_first_and_states_what_it_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    report = profile_report(["meanpose", "tinycnn"], dataset="icvl", device="auto", reference="tinycnn", rounds=1,
                            min_run_time_s=0.05, throughput_batch=2, fvcore=False, onnxruntime=False,
                            out=tmp_path / "p.csv")
    assert [row.model for row in report.costs] == ["tinycnn", "meanpose"]
    assert [(row.model, row.device) for row in report.latencies] == [("tinycnn", "cpu"), ("meanpose", "cpu")]
    assert report.latencies[0].ratio == 1.0 and report.latencies[1].samples_per_s > 0
    assert report.costs[0].params == 63520 and report.costs[1].fvcore_gmac is None
    assert report.warnings == ("no GPU: CUDA latency skipped on this machine",)
    assert any(note.startswith("latency: ") and "1 interleaved round" in note for note in report.notes)
    assert report.written == tmp_path / "p.csv" and (tmp_path / "p.csv").is_file()


def test_profile_cli_prints_ratios_against_the_reference(tmp_path):
    from hpbench.cli import app

    result = CliRunner().invoke(app, ["profile", "--models", "meanpose", "--reference", "tinycnn", "--rounds", "1",
                                      "--min-time", "0.05", "--throughput-batch", "0", "--no-fvcore",
                                      "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert "thread" in result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.output.splitlines()
            if line.startswith("│ ")]
    latency = {tuple(cells[:2]): cells for cells in rows if len(cells) == 6}  # model, device, ..., x tinycnn
    assert latency["tinycnn", "cpu"][-1] == "1.00"  # the reference against itself
    assert {("tinycnn", "cpu"), ("meanpose", "cpu")} <= set(latency)
    assert (tmp_path / "p.csv").is_file()


def test_a_model_without_a_card_is_an_error_naming_the_card_file_not_a_guessed_input():
    from hpbench.cards import CardError
    from hpbench.models import create_model, models

    models.add("cardless-tiny", lambda *, num_joints=14: create_model("tinycnn", num_joints=num_joints))
    try:
        with pytest.raises(CardError, match=r"expected zoo/cardless-tiny\.toml"):
            profile_models(["cardless-tiny"], dataset="nyu", rounds=1, min_run_time_s=0.05, throughput_batch=0,
                           fvcore=False)
    finally:
        models._entries.pop("cardless-tiny")

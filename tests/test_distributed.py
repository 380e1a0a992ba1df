"""Distributed data parallel training (gloo on CPU): two processes train as one would on the same global batch.

The two-process runs happen once per module (``ddp_runs``): spawned workers join a
gloo group through the same environment variables torchrun sets, run every
scenario and save what they end with; the tests compare that with
single-process training in this process. Tolerance: float32 weights within
atol 1e-6 + rtol 1e-5 after one SGD step (the gradient all-reduce sums the two
halves of the batch in another order than one backward pass does), atol 1e-5
after six SGD steps with momentum. The optimizer is SGD on purpose: its update
is linear in the gradient. Adam divides by the gradient's magnitude, so a
gradient that is zero up to rounding (common with the L1 loss, whose gradient is
a sum of signs that often cancels exactly) turns rounding noise of 1e-8 into a
step of a sizeable fraction of the learning rate, and two correct runs differ.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from hpbench import distributed
from hpbench.cards import Constant
from hpbench.models.base import HandPoseModel
from hpbench.train import Recipe, _RankShares, _share, train

WORLD = 2
JOINTS = 3
SIZE = 16


class TinyNet(HandPoseModel):
    """Conv, ReLU, pooling and a linear layer; BatchNorm only when asked (its DDP result differs on CPU)."""

    def __init__(self, *, batchnorm: bool = False) -> None:
        super().__init__(num_joints=JOINTS, input_size=SIZE)
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(4) if batchnorm else nn.Identity()
        self.head = nn.Linear(4, 3 * JOINTS)

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        code = torch.relu(self.norm(self.conv(depth))).mean(dim=(2, 3))
        return self.head(code).view(-1, JOINTS, 3) * SIZE


def _model(batchnorm: bool = False) -> TinyNet:
    torch.manual_seed(0)
    return TinyNet(batchnorm=batchnorm)


def _dataset(n: int) -> list[dict[str, torch.Tensor]]:
    """``n`` random items; every joint visible, so the default loss is a per-sample mean."""
    generator = torch.Generator().manual_seed(n)
    return [{"depth": torch.randn(1, SIZE, SIZE, generator=generator),
             "joints": torch.rand(JOINTS, 3, generator=generator) * SIZE,
             "visible": torch.ones(JOINTS, dtype=torch.bool)} for _ in range(n)]


# One optimizer step of SGD: the weight change is the gradient itself (lr 0.5), so any sharding or
# averaging error shows. Six steps of SGD with momentum exercise short last batches: 19 samples end with a batch of 3
# (shares of 2 and 1, weighted), 17 with a batch of 1 (rank 1 runs a stand-in sample weighted 0, the
# run stopped after epoch 1 and resumed), and epoch losses.
SGD_STEP = Recipe(optimizer="sgd", lr=0.5, batch_size=8, epochs=1, schedule=Constant(), augment=False,
                  mixed_precision=False)
TAIL = Recipe(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=8, epochs=2, schedule=Constant(), augment=False,
              mixed_precision=False)


def _worker(rank: int, port: int, out: str) -> None:
    """One of WORLD processes: every scenario, results saved under ``out``."""
    import hpbench.train as train_module

    torch.set_num_threads(1)
    out_dir = Path(out)
    env = {"WORLD_SIZE": str(WORLD), "RANK": str(rank), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}
    os.environ.update(env)
    saved_by, logged_by = [], []
    real_save = train_module._save_checkpoint

    def recording_save(*args, **kwargs):
        saved_by.append(distributed.rank())
        return real_save(*args, **kwargs)

    train_module._save_checkpoint = recording_save
    with distributed.process_group("cpu") as launched:
        assert launched is not None and launched.rank == rank and distributed.world_size() == WORLD
        report: dict[str, object] = {}

        model = _model()
        result = train(model, _dataset(16), SGD_STEP, checkpoint_dir=out_dir / "sgd", max_steps=1,
                       log=lambda record: logged_by.append(distributed.rank()))
        torch.save(model.state_dict(), out_dir / f"sgd-rank{rank}.pt")
        report["sgd_loss"] = result.final_loss

        model = _model()
        result = train(model, _dataset(19), TAIL, checkpoint_dir=out_dir / "tail")
        torch.save(model.state_dict(), out_dir / f"tail-rank{rank}.pt")
        report["tail_loss"] = result.final_loss
        report["tail_steps"] = result.steps

        model = _model()  # the same run, stopped after epoch 1 and resumed by both ranks from rank 0's checkpoint
        train(model, _dataset(17), TAIL, checkpoint_dir=out_dir / "resume", max_steps=3)
        model = _model()
        result = train(model, _dataset(17), TAIL, checkpoint_dir=out_dir / "resume", resume=True)
        torch.save(model.state_dict(), out_dir / f"resume-rank{rank}.pt")
        report["resumed_from"] = result.resumed_from_epoch

        model = _model(batchnorm=True)
        train(model, _dataset(16), SGD_STEP, checkpoint_dir=out_dir / "bn", max_steps=2)
        torch.save(model.state_dict(), out_dir / f"bn-rank{rank}.pt")

        try:
            train(_model(), _dataset(16), replace(SGD_STEP, batch_size=7), checkpoint_dir=out_dir / "odd")
        except ValueError as error:
            report["odd_error"] = str(error)
        report["rank_sum"] = distributed.all_reduce_sum(torch.tensor(float(rank + 1))).item()
    report["saved_by"], report["logged_by"] = saved_by, logged_by
    (out_dir / f"report-rank{rank}.json").write_text(json.dumps(report))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    """Run the two-process scenarios once; their outputs' folder."""
    out = tmp_path_factory.mktemp("ddp")
    started = time.perf_counter()
    context = torch.multiprocessing.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD,
                                                    join=False, start_method="spawn")
    while not context.join(timeout=5):  # raises when a worker failed
        if time.perf_counter() - started > 240:
            for process in context.processes:
                process.terminate()
            pytest.fail("the two-process gloo run did not finish in 240 s (a collective waiting forever?)")
    return out


def _report(out: Path, rank: int) -> dict:
    return json.loads((out / f"report-rank{rank}.json").read_text())


def _assert_close_and_moved(ddp: dict[str, torch.Tensor], single: nn.Module, before: nn.Module, *, atol: float,
                            rtol: float) -> float:
    """Largest |DDP - single| weight difference; fails when the step did not move every weight tensor."""
    worst = 0.0
    for name, expected in single.state_dict().items():
        moved = (expected - before.state_dict()[name]).abs().max().item()
        assert moved > 100 * atol, f"{name} barely changed ({moved:.2e}): the comparison would prove nothing"
        torch.testing.assert_close(ddp[name], expected, atol=atol, rtol=rtol, msg=lambda text: f"{name}: {text}")
        worst = max(worst, (ddp[name] - expected).abs().max().item())
    return worst


def test_two_process_step_equals_single_process_step_on_the_global_batch(ddp_runs, tmp_path):
    single = _model()
    result = train(single, _dataset(16), SGD_STEP, checkpoint_dir=tmp_path, max_steps=1)
    for rank in range(WORLD):
        ddp = torch.load(ddp_runs / f"sgd-rank{rank}.pt")
        worst = _assert_close_and_moved(ddp, single, _model(), atol=1e-6, rtol=1e-5)
        print(f"rank {rank}: max |DDP - single| after one SGD step = {worst:.3e}")
    assert _report(ddp_runs, 0)["sgd_loss"] == pytest.approx(result.final_loss, rel=1e-6)


@pytest.mark.parametrize("run, frames", [("tail", 19), ("resume", 17)])
def test_short_last_batch_epoch_loss_and_resume_match_single_process(ddp_runs, tmp_path, run, frames):
    single = _model()
    result = train(single, _dataset(frames), TAIL, checkpoint_dir=tmp_path)
    assert result.steps == 6
    for rank in range(WORLD):
        report = _report(ddp_runs, rank)
        if run == "tail":
            assert report["tail_steps"] == 6 and report["tail_loss"] == pytest.approx(result.final_loss, rel=1e-5)
        else:
            assert report["resumed_from"] == 1
        worst = _assert_close_and_moved(torch.load(ddp_runs / f"{run}-rank{rank}.pt"), single, _model(),
                                        atol=1e-5, rtol=1e-5)
        print(f"rank {rank} {run}: max |DDP - single| after six SGD-momentum steps = {worst:.3e}")


def test_rank_zero_alone_logs_and_writes_checkpoints(ddp_runs):
    for rank in range(WORLD):
        report = _report(ddp_runs, rank)
        assert report["saved_by"] == ([0] * 6 if rank == 0 else [])  # epochs: sgd 1, tail 2, resume 1 + 1, bn 1
        assert report["logged_by"] == ([0] if rank == 0 else [])
    assert json.loads((ddp_runs / "resume/last.json").read_text())["checkpoint"] == "epoch0002"
    assert not list(ddp_runs.glob("**/*.tmp"))


def test_batchnorm_model_ends_identical_on_every_rank(ddp_runs):
    """Per-rank BatchNorm on CPU: parameters stay in sync through DDP, running statistics are rank 0's."""
    first, second = (torch.load(ddp_runs / f"bn-rank{rank}.pt") for rank in range(WORLD))
    assert first["norm.num_batches_tracked"].item() == 2
    for name, tensor in first.items():
        assert torch.equal(tensor, second[name]), name


def test_global_batch_not_divisible_by_the_processes_fails_clearly(ddp_runs):
    for rank in range(WORLD):
        message = _report(ddp_runs, rank)["odd_error"]
        assert "batch size 7" in message and "multiple of 2" in message


def test_collective_helpers(ddp_runs):
    assert _report(ddp_runs, 0)["rank_sum"] == _report(ddp_runs, 1)["rank_sum"] == 3.0


def test_rank_shares_are_the_single_process_batches():
    """The union of the ranks' shares at each step is the batch the single-process loader draws."""
    for size, batch in ((17, 8), (16, 4), (5, 4), (30, 6)):
        seed = 7 * 100_003 + 3
        loader = torch.utils.data.DataLoader(range(size), batch_size=batch, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        expected = [b.tolist() for b in loader]
        for world in (1, 2, 3):
            per_rank = [list(_RankShares(size, batch, seed, rank=r, world=world)) for r in range(world)]
            assert all(len(shares) == len(expected) for shares in per_rank)
            for step, want in enumerate(expected):
                owners = [r for r in range(world) if _share(len(want), world, r)[1] > _share(len(want), world, r)[0]]
                assert sum((per_rank[r][step] for r in owners), []) == want  # others hold a stand-in
                assert all(per_rank[r][step] == want[:1] for r in range(world) if r not in owners)


def test_launch_env_reads_torchrun_variables():
    assert distributed.launch_env({}) is None
    env = distributed.launch_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (env.rank, env.local_rank, env.world_size) == (3, 1, 4)
    with pytest.raises(RuntimeError, match="RANK"):
        distributed.launch_env({"WORLD_SIZE": "2"})
    with pytest.raises(RuntimeError, match="inconsistent"):
        distributed.launch_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert not distributed.is_distributed() and distributed.is_main() and distributed.world_size() == 1
    with distributed.process_group("cpu", {"WORLD_SIZE": "1", "RANK": "0"}) as launched:
        assert launched.world_size == 1 and not distributed.is_distributed()  # one process: no group


def test_torchrun_launches_hpbench_train_on_two_processes(tmp_path):
    """``torchrun --nproc-per-node 2 -m hpbench.cli train`` end to end on a tiny synthetic set."""
    env = {**os.environ, "HPBENCH_SYNTH_ROOT": str(tmp_path / "synth"), "HPBENCH_CACHE_DIR": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
               "-m", "hpbench.cli", "train", "--model", "tinycnn", "--dataset", "synth", "--frames", "16",
               "--epochs", "1", "--batch-size", "8", "--results-dir", str(tmp_path / "results")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "results/synth/tinycnn-s0"
    for name in ("config.json", "environment.json", "log.jsonl", "metrics.csv", "predictions.txt",
                 "checkpoints/epoch0001.safetensors"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "profile.csv").exists()  # profiling is off by default for train
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 1  # rank 0 alone logs
    config = json.loads((run_dir / "config.json").read_text())
    assert config["world_size"] == 2 and config["recipe"]["batch_size"] == 8
    assert "mean error" in done.stdout

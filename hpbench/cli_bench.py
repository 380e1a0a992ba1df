"""``hpbench bench``: the performance claims as ratios from one run (registered on the app by
:func:`register_bench_command`, so that hpbench/cli.py stays one readable page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hpbench._console import console as _console, fail as _fail
from hpbench._text import plural
from hpbench.cli_options import EvalDirOption, parse_models

__all__ = ["register_bench_command"]

BenchModelsOption = Annotated[str, typer.Option(
    "--models", "-m", help="Comma-separated: the candidate first (timed against its MAC floor and trained), then "
                           "the references it is compared with.")]
BenchThreadsOption = Annotated[int, typer.Option("--threads", min=1, help="CPU threads for every measurement.")]
BenchBudgetOption = Annotated[float, typer.Option(
    "--budget", min=0.05, help="Seconds per timed item (a model in a runtime; the GEMM a quarter, twice); the "
                               "report and training comparisons get 8x that each. Counting and warm-ups come on top.")]
BenchOutOption = Annotated[Optional[Path], typer.Option("--out", "-o", help="Write tidy result rows to this CSV.")]
BenchReadmeOption = Annotated[Optional[Path], typer.Option(
    "--readme", help="Rewrite the table between <!-- performance-table --> and <!-- /performance-table --> here.")]
BenchRuntimesOption = Annotated[Optional[str], typer.Option(
    "--runtimes", help="Comma-separated: eager, fused, compile, onnx, ... as hpbench profile takes them. Default: "
                       "eager,fused and onnx when onnxruntime is installed.")]
TrainStepsOption = Annotated[int, typer.Option(min=1, help="Training steps per setup (before, after) and round.")]


def bench_command(
    models: BenchModelsOption = "ours,trinet",
    threads: BenchThreadsOption = 2,
    budget: BenchBudgetOption = 6.0,
    runtimes: BenchRuntimesOption = None,
    out: BenchOutOption = None,
    readme: BenchReadmeOption = None,
    eval_dir: EvalDirOption = None,
    train_steps: TrainStepsOption = 5,
) -> None:
    """Measure side by side, in one run: reference / candidate latency per runtime, the candidate against its
    MAC floor (a GEMM timed in the same run), hpbench report against a pandas read of the same files, and
    training crops/s as the issue found it and now. Prints each ratio with its bar and PASS/MISS."""
    from hpbench.bench import bars, bench_rows, performance_table, run_bench, write_performance_table
    from hpbench.cards import CardError
    from hpbench.cli_options import parse_runtime_list

    names = parse_models(models)
    chosen = parse_runtime_list(runtimes) if runtimes is not None else None
    if readme is not None and not readme.is_file():
        _fail(f"--readme {readme} does not exist")
    err = _console(stderr=True)
    try:
        result = run_bench(names, threads=threads, seconds=budget, runtimes=chosen, eval_dir=eval_dir,
                           train_steps=train_steps, progress=lambda text: err.print(text, style="dim"))
    except (CardError, ValueError) as error:
        _fail(str(error))
    out_console = _console()
    out_console.print(f"GEMM: {result.gemm.gmac_per_s:.3g} GMAC/s at {plural(threads, 'thread')}, the faster of "
                      f"{' and '.join(f'{rate:.3g}' for rate in result.gemm_rates)} (before, after the inference) "
                      f"(torch.mm {'x'.join(map(str, result.gemm.shape))} float32, median of {result.gemm.samples})",
                      soft_wrap=True)
    for bar in bars(result):
        value = "-" if bar.value is None else f"{bar.value:.3g}x"
        flag = f"  (!) unreliable: {'; '.join(dict.fromkeys(bar.reasons))}" if bar.reasons and bar.value else ""
        said = bar.detail or bar.skipped
        out_console.print(f"{bar.name}: {value}  bar {bar.bar_text}  {bar.verdict}"
                          + (f"  [{said}]" if said else "") + flag, soft_wrap=True, markup=False)
    for note in result.inference.notes:
        out_console.print(f"note: {note}", soft_wrap=True, markup=False, style="dim")
    if out is not None:
        from hpbench.results import write_results

        out_console.print(f"rows: {write_results(bench_rows(result), out)}", soft_wrap=True, markup=False)
    if readme is not None:
        try:
            changed = write_performance_table(readme, performance_table(result))
        except ValueError as error:
            _fail(f"--readme {readme}: {error}")
        out_console.print(f"{readme}: performance table {'rewritten' if changed else 'unchanged'}",
                          soft_wrap=True, markup=False)
    out_console.print(f"bench took {result.seconds:.0f} s", markup=False)


def register_bench_command(app: typer.Typer) -> None:
    """Add ``bench`` to ``app``."""
    app.command("bench", short_help="Performance ratios from one run; rewrites the README's table.")(bench_command)

"""Two tables that compare with papers: the reproduction gap, and the seed paper's Table 1/2 layout.

- :func:`reproduction_table`: per method with a model card, the mean error its paper reports (the
  card's ``[published.<dataset>]``), the score of its released predictions in handpose-eval when
  they are among the results rows, and this library's result when present, with the protocol
  of each.
- :func:`paper_table`: the seed paper's layout (error, thop MACs as "FLOPs (G)", params (M)),
  its quoted figures (hpbench.report.quoted) next to the measured ones, footnotes where a
  quoted figure is wrong.
Both return (table, footnotes); footnote marks "[n]" follow method names.
"""

from __future__ import annotations

import pandas as pd

from hpbench.report.names import card_of, display_name, published_method
from hpbench.report.quoted import QUOTED
from hpbench.report.tables import QUICK, seed_statistics

__all__ = ["paper_table", "reproduction_table"]

_RELEASED = "the authors' released predictions, scored by hpbench"


def _errors(results: pd.DataFrame, dataset: str) -> pd.Series:
    rows = results[results["dataset"] == dataset]
    return seed_statistics(rows, "mean_error", unit="mm")["mean"]


def _released(errors: pd.Series, model: str) -> tuple[float, str]:
    """(mean error, file) of the first released-prediction file among ``errors`` reimplemented by ``model``."""
    for name, error in errors.items():
        card = card_of(str(name))
        if published_method(str(name)) and card is not None and card.name == model:
            return float(error), str(name)
    return float("nan"), ""


def _row_text(results: pd.DataFrame, model: str, dataset: str, field: str) -> str:
    if field not in results.columns:
        return ""
    values = results[(results["model"] == model) & (results["dataset"] == dataset)][field]
    values = [str(value) for value in values if not pd.isna(value) and str(value)]
    return values[0] if values else ""


def _card_protocol(model: str, dataset: str) -> str:
    from hpbench.cards import CardError, load_protocol

    try:
        return f"{load_protocol(model, dataset).origin} ({dataset.upper()})"
    except CardError:
        return ""


def reproduction_table(results: pd.DataFrame, *, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """Per card with a published error on ``dataset`` (or a result there): Paper (mm), Released
    predictions (mm), This library (mm), Gap (mm) = this library - paper, and the protocol of each;
    a smoke-schedule result is marked. Missing numbers are NaN."""
    from hpbench.cards import card_names, load_card

    errors = _errors(results, dataset)
    records, notes = [], []
    for name in card_names():
        card = load_card(name)
        paper = card.published.get(dataset)
        mine = float(errors.get(name, float("nan")))
        if (paper is None or paper.mean_error_mm is None) and pd.isna(mine):
            continue
        released, file = _released(errors, name)
        schedule = _row_text(results, name, dataset, "schedule")
        protocol = _row_text(results, name, dataset, "protocol") or _card_protocol(name, dataset)
        method = display_name(name)
        if schedule == QUICK:
            notes.append(f"[{len(notes) + 1}] {method}: trained on the smoke schedule (--quick), not a reproduction")
            method += f" [{len(notes)}]"
        records.append({
            "Method": method, "Paper (mm)": paper.mean_error_mm if paper else float("nan"),
            "Released predictions (mm)": released, "This library (mm)": mine,
            "Gap (mm)": mine - paper.mean_error_mm if paper and paper.mean_error_mm else float("nan"),
            "Protocol (this library)": protocol if not pd.isna(mine) else "",
            "Released file": file, "Model": name, "Schedule": schedule,
        })
    notes.append(f"Paper: the error the method's paper reports; released predictions: {_RELEASED}; "
                 "gap: this library - paper.")
    return pd.DataFrame(records), notes


def _measured(results: pd.DataFrame, model: str, dataset: str, metric: str) -> float:
    """``metric`` of ``model`` from profile rows (params in M, thop MACs in G), else from its card; NaN."""
    rows = results[(results["model"] == model) & (results["metric"] == metric) & results["dataset"].isin([dataset, ""])]
    if metric == "macs":
        rows = rows[(rows["counter"] == "thop") & (rows["unit"] == "GMAC")]
    else:
        rows = rows[rows["unit"] == "count"]
    if not rows.empty:
        return float(rows["value"].iloc[0]) / (1.0 if metric == "macs" else 1e6)
    card = card_of(model)
    if card is None or dataset not in card.declared:
        return float("nan")
    declared = card.declared[dataset]
    return declared.thop_macs / 1e9 if metric == "macs" else declared.params / 1e6


def paper_table(results: pd.DataFrame, *, dataset: str) -> tuple[pd.DataFrame, list[str]]:
    """The seed paper's Table 1 (ICVL) / 2 (NYU) layout: per quoted method, error, FLOPs (thop MACs, G)
    and params (M) as the paper gives them and as measured here; footnotes "[n]" on wrong figures.

    Measured error: this library's result, else the released predictions' score (footnoted)."""
    from hpbench.cards import load_card

    errors = _errors(results, dataset)
    records, notes = [], []
    for quote in QUOTED:
        card = load_card(quote.model)
        published = card.published.get(dataset)
        error = float(errors.get(quote.model, float("nan")))
        marks = []
        if pd.isna(error):
            error, file = _released(errors, quote.model)
            if file:
                notes.append(f"[{len(notes) + 1}] measured error of {display_name(quote.model)}: {_RELEASED} ({file})")
                marks.append(len(notes))
        for text in (quote.params_note, quote.gmac_note):
            if text:
                notes.append(f"[{len(notes) + 1}] {text}")
                marks.append(len(notes))
        records.append({
            "Method": display_name(quote.model) + "".join(f" [{mark}]" for mark in marks),
            "Error paper (mm)": published.mean_error_mm if published and published.mean_error_mm else float("nan"),
            "Error measured (mm)": error,
            "FLOPs paper (G)": quote.gmac if quote.gmac is not None else float("nan"),
            "FLOPs measured (G)": _measured(results, quote.model, dataset, "macs"),
            "Params paper (M)": quote.params_m if quote.params_m is not None else float("nan"),
            "Params measured (M)": _measured(results, quote.model, dataset, "params"),
            "Model": quote.model,
        })
    notes.append("FLOPs: thop multiply-accumulates (MACs) at batch 1, as the seed paper counts them; "
                 "paper: the seed paper's figures (errors: each method's paper).")
    return pd.DataFrame(records), notes


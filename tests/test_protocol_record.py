"""Every run writes protocol.json: the card's original protocol (../shared/design/protocols.md) and
what hpbench applied (crop, training frames, centres, augmentation, schedule, checkpoint); result rows
and config.json carry the protocol. Expected crops below are protocols.md's numbers, not the cards'."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hpbench
from hpbench.cards import load_card
from hpbench.cli import app
from hpbench.data.crop import Augmentation
from hpbench.data.synth import ensure_synthetic
from hpbench.results import read_results

FRAMES = 3  # synthetic training frames of each format

# protocols.md, per original and dataset format: lateral box (mm), depth extent (mm), input px, and a
# fact of its centre source that the record's protocol words name
TRIHORN = {"icvl": (280.0, 280.0, 128, "500 mm"),  # cube 280 mm, 128x128; CoM of 0 < d <= 500 mm
           "nyu": (280.0, 280.0, 128, "center_train_refined.txt")}
A2J = {"icvl": (190.0, 300.0, 176, "icvl_center_test"),  # +-95 mm box, depth +-150 mm, 176x176
       "nyu": (220.0, 300.0, 176, "center_train_refined.txt")}  # +-110 mm box
V2V = {"icvl": (200.0, 200.0, 88, "center_train_refined.txt"),  # 200 mm cube, 88 bins
       "nyu": (250.0, 250.0, 88, "center_train_refined.txt")}  # 250 mm cube
ORIGINS = {"trinet": ("TriHorn-Net", TRIHORN), "ours": ("TriHorn-Net", TRIHORN), "tinycnn": ("TriHorn-Net", TRIHORN),
           "meanpose": ("TriHorn-Net", TRIHORN), "a2j": ("A2J", A2J), "v2v": ("V2V-PoseNet", V2V),
           "handfold": ("HandFoldingNet", None)}
# protocols.md: A2J's training code is NYU's only; HandFoldingNet has no NYU code; ours has no public code
# and follows TriHorn-Net's protocol (section 5)
BORROWED = {("a2j", "icvl"), ("handfold", "nyu"), ("ours", "icvl"), ("ours", "nyu")}
FORMATS = {"synth": "icvl", "synth-nyu": "nyu"}
# protocols.md, per original: TriHorn-Net's jitter and rotation happen before cropping (approximated on a
# cached crop), A2J's edge shifts too; V2V's voxel scale and rotation move points before rounding (not
# applied), its integer shift is a crop shift; HandFoldingNet's transforms act on points inside the model
AUGMENT_STATUS = {"TriHorn-Net": "approximated", "A2J": "approximated", "V2V-PoseNet": "partly applied",
                  "HandFoldingNet": "not applied"}
TRAIN_COM = {("trinet", "icvl"), ("ours", "icvl"), ("tinycnn", "icvl"), ("meanpose", "icvl"), ("a2j", "icvl")}


def _family(name: str) -> str:
    return name.split("@")[0].split("-")[0]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return {dataset: ensure_synthetic(dataset, tmp_path_factory.mktemp(dataset), frames=FRAMES, test_frames=1,
                                      seed=5) for dataset in FORMATS}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _train(root: Path, results: Path, cache: Path, *options: str, model: str = "tinycnn",
           dataset: str = "synth"):
    result = CliRunner().invoke(app, ["train", "--model", model, "--dataset", dataset, "--data-root", str(root),
                                      "--results", str(results), "--threads", "1", *options],
                                env={"HPBENCH_CACHE_DIR": str(cache), "COLUMNS": "250"})
    return result, results / dataset / f"{model}-s0"


@pytest.mark.parametrize("dataset", sorted(FORMATS))
@pytest.mark.parametrize("name", hpbench.list_models())
def test_two_training_steps_write_the_protocol_record(name, dataset, roots, cache_dir, tmp_path):
    result, run_dir = _train(roots[dataset], tmp_path, cache_dir, "--batch-size", "1", "--max-steps", "2",
                             model=name, dataset=dataset)
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "protocol.json").read_text())
    key = FORMATS[dataset]
    origin, crops = ORIGINS[_family(name)]
    assert record["model"] == name and record["origin"] == origin
    assert record["label"] == f"{origin} ({key.upper()}{', borrowed' if (_family(name), key) in BORROWED else ''})"
    if crops is None:  # HandFoldingNet: 1,024 points of the hand region, sampled from a crop
        assert "1024 points" in record["crop"]["protocol"]
    else:
        lateral, depth, size, centre_fact = crops[key]
        assert (record["crop"]["lateral_mm"], record["crop"]["depth_mm"], record["crop"]["size_px"]) == (
            lateral, depth, size)
        assert centre_fact in record["centres"][0]["protocol"]
    # centres as used: a centre-of-mass protocol (TriHorn-Net's ICVL: 0 < d <= 500 mm; A2J's ICVL training,
    # which has no centre file) takes the centre of mass; every other stands in the synthetic sets'
    # refined-centre file for the protocol's, for every frame
    com = (_family(name), key) in TRAIN_COM
    train_centres = ("centre of mass (depth in 0-500 mm)" if com
                     else f"file {roots[dataset] / 'center_train_refined.txt'}")
    assert record["centres"][0]["source"] == train_centres
    assert record["centres"][0]["counts"] == {train_centres: FRAMES}
    assert record["train_frames"]["used"] == record["train_frames"]["total"] == FRAMES
    # ICVL's lists (TriHorn-Net's 22k names, A2J's validIndex, HandFold's dated folders) do not fit synthetic
    # names: all frames, said; V2V keeps the frames with a valid centre, and NYU's protocols take all lines
    fallback = record["train_frames"]["fallback"]
    assert fallback.endswith(f"all {FRAMES} frames") if key == "icvl" and _family(name) != "v2v" else fallback == ""
    assert record["schedule"] == {"name": "full", "steps": 2, "epochs": record["schedule"]["epochs"], "batch": 1}
    assert record["checkpoint"] == "final"
    augment = record["augmentation"]
    card = load_card(name)
    assert set(augment) == {"applied", "parameters", "protocol", "protocol_words", "status"}
    assert not augment["applied"].startswith("hpbench's generic")  # runs apply the protocol's own transforms
    if card.recipe.augment:  # the protocol's own transforms: what a cached crop can do with each
        assert augment["parameters"] == {} and augment["status"] == AUGMENT_STATUS[origin]
        assert all(step["status"].split(" (")[0] in ("applied", "approximated", "not applied")
                   for step in augment["protocol"])
    else:
        assert augment["status"] == ("not applied" if augment["protocol"] else "as the protocol")
    assert "warning" not in result.output  # a synthetic set lacks the protocols' lists: expected, no warning
    rows = read_results([run_dir / "metrics.csv"])
    assert set(rows["protocol"]) == {record["label"]} and set(rows["schedule"]) == {"full"}
    assert json.loads((run_dir / "config.json").read_text())["protocol"] == record["label"]


def test_the_frame_list_below_the_root_chooses_the_training_frames(tmp_path, cache_dir):
    root = ensure_synthetic("synth", tmp_path / "data", frames=FRAMES, test_frames=1, seed=6)
    (root / "lists").mkdir()
    names = ["synth/image_0000.png", "synth/image_0002.png", "201403121135/image_0000.png"]  # the last: no frame
    (root / "lists" / "icvl_train_list.txt").write_text("\n".join(names) + "\n")
    result, run_dir = _train(root, tmp_path / "results", cache_dir, "--batch-size", "1", "--epochs", "1")
    assert result.exit_code == 0, result.output
    frames = json.loads((run_dir / "protocol.json").read_text())["train_frames"]
    assert (frames["used"], frames["total"], frames["dropped"], frames["unmatched"]) == (2, 3, 1, 1)
    assert frames["fallback"] == "" and "icvl_train_list.txt" in frames["rule"]
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [2]  # one epoch of the 2 listed frames at batch 1


def test_a_real_dataset_without_its_list_trains_on_all_frames_and_warns(tmp_path, cache_dir):
    root = ensure_synthetic("synth", tmp_path / "data", frames=FRAMES, test_frames=1, seed=7)
    result, run_dir = _train(root, tmp_path / "results", cache_dir, "--batch-size", "1", "--max-steps", "1",
                             dataset="icvl")
    assert result.exit_code == 0, result.output
    said = f"list icvl_train_list.txt not found below {root}: all {FRAMES} frames"
    assert f"tinycnn: warning: training frames: {said}" in " ".join(result.output.split())
    record = json.loads((run_dir / "protocol.json").read_text())
    assert record["train_frames"]["fallback"] == said
    assert any(json.loads(line).get("warning", "").startswith(f"training frames: {said}")
               for line in (run_dir / "log.jsonl").read_text().splitlines())
    # TriHorn-Net's ICVL protocol (tinycnn's): the centre of mass of 0 < d <= 500 mm (protocols.md)
    assert record["centres"][0]["source"] == "centre of mass (depth in 0-500 mm)"
    assert record["centres"][0]["counts"] == {"centre of mass (depth in 0-500 mm)": FRAMES}


def test_resume_refuses_a_run_made_on_other_training_frames(tmp_path, cache_dir):
    root = ensure_synthetic("synth", tmp_path / "data", frames=FRAMES, test_frames=1, seed=8)
    first, _ = _train(root, tmp_path / "results", cache_dir, "--batch-size", "1", "--max-steps", "1")
    assert first.exit_code == 0, first.output
    (root / "icvl_train_list.txt").write_text("synth/image_0001.png\n")  # the root itself is searched too
    again, _ = _train(root, tmp_path / "results", cache_dir, "--batch-size", "1", "--max-steps", "1", "--resume")
    assert again.exit_code != 0
    assert "--resume: train_frames 3/3" in " ".join(again.output.split())


def test_quick_rows_are_marked_in_the_report(roots, tmp_path, monkeypatch):
    from hpbench.data.specs import get_dataset
    from hpbench.runner import RunConfig, RunSettings, run

    monkeypatch.setenv("HPBENCH_CACHE_DIR", str(tmp_path / "cache"))
    settings = RunSettings(quick=True, max_steps=1, batch_size=1, data_root=roots["synth"], profile=True)
    runs, written = run(RunConfig(models=("tinycnn",), dataset=get_dataset("synth"), settings=settings,
                                  results_dir=tmp_path / "results", reports_dir=tmp_path / "reports"),
                        progress=False, echo=lambda text: None)
    assert [r.error for r in runs] == [None, None]
    table = pd.read_csv(tmp_path / "reports/synth/synth_table.csv", keep_default_na=False).set_index("Model")
    assert list(table.loc[["tinycnn", "meanpose"], "Schedule"]) == ["quick", "quick"]
    assert list(table.loc[["tinycnn", "meanpose"], "Protocol"]) == ["TriHorn-Net (ICVL)"] * 2
    markdown = (tmp_path / "reports/synth/synth_table.md").read_text()
    assert "a: protocol TriHorn-Net (ICVL)" in markdown and "smoke schedule" in markdown
    costs = read_results([runs[0].run_dir.profile])
    assert set(costs["protocol"]) == {"TriHorn-Net (ICVL)"} and set(costs["schedule"]) == {"quick"}


def test_training_frames_without_a_centre_file_fall_back_to_all_frames(tmp_path):
    from hpbench.data.framelists import training_frames
    from hpbench.data.specs import get_dataset
    from hpbench.protocol import Frames

    v2v = Frames(train="valid-centers")  # V2V-PoseNet: lines whose refined centre is not `invalid`
    files = [str(tmp_path / "Training/Depth/201403121135" / f"image_{i:04d}.png") for i in range(4)]
    chosen = training_frames(v2v, get_dataset("icvl"), tmp_path, files, valid_centers=None)
    assert chosen.fallback == "no centre file: all 4 frames" and chosen.warn
    assert list(chosen.selection.indices) == [0, 1, 2, 3]
    chosen = training_frames(v2v, get_dataset("icvl"), tmp_path, files,
                             valid_centers=np.array([True, False, True, True]))
    assert list(chosen.selection.indices) == [0, 2, 3] and chosen.fallback == "" and not chosen.warn


def test_no_augmentation_where_the_protocol_has_none_is_as_the_protocol():
    from dataclasses import replace

    from hpbench.cards import load_protocol
    from hpbench.record import augment_record

    trihorn = load_protocol("trinet", "icvl")
    assert augment_record(replace(trihorn, augment=()), None).status == "as the protocol"
    off = augment_record(trihorn, None)
    assert off.status == "not applied" and off.applied == "none"
    assert [step["status"] for step in off.protocol] == ["not applied (augmentation off)"] * 4
    assert augment_record(trihorn, Augmentation()).status == "not yet applied"


def test_the_record_says_per_transform_what_was_applied():
    from hpbench.cards import load_protocol
    from hpbench.data.augment import Augmenter
    from hpbench.record import augment_record

    def record(name, key):
        protocol = load_protocol(name, key)
        return augment_record(protocol, Augmenter(protocol.augment, protocol.crop))

    # TriHorn-Net (protocols.md section 1): jitter and rotation act on the full image before cropping
    trihorn = record("trinet", "icvl")
    kinds = [(step["kind"], step["status"].split(" (")[0]) for step in trihorn.protocol]
    assert kinds == [("center_jitter", "approximated"), ("rotation", "approximated"), ("scale", "applied"),
                     ("pixel_dropout", "applied")]
    assert trihorn.status == "approximated" and "outside" in trihorn.protocol[1]["status"]
    assert trihorn.protocol[2]["low"] == 0.8 and trihorn.protocol[3]["max_fraction"] == 0.15  # parameters kept
    # V2V-PoseNet (section 3): only the integer voxel shift can be done on a crop (its 96^3 frame's margin aside)
    v2v = record("v2v", "nyu")
    assert [step["status"].split(" (")[0] for step in v2v.protocol] == ["not applied", "not applied", "approximated"]
    assert v2v.status == "partly applied"
    assert record("handfold", "icvl").status == "not applied"
    json.dumps(asdict(trihorn))  # JSON as before
    protocol = load_protocol("a2j", "nyu")
    with pytest.raises(ValueError, match="not built from this protocol"):
        augment_record(load_protocol("trinet", "nyu"), Augmenter(protocol.augment, protocol.crop))


def test_centres_from_several_sources_are_counted_each():
    from hpbench.cards import load_protocol
    from hpbench.record import centres_record

    words = {1: "file c.txt", 2: "centre of mass (depth in 10-500 mm)"}
    record = centres_record("train", load_protocol("v2v", "icvl"), np.array([1, 2, 1, 1]), words)
    assert record.source == "file c.txt: 3 frames; centre of mass (depth in 10-500 mm): 1 frame"
    assert record.counts == {"file c.txt": 3, "centre of mass (depth in 10-500 mm)": 1}


def test_results_written_before_the_protocol_columns_still_read(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("model,dataset,split,metric,value,unit\ntrinet,nyu,test,mean_error,7.3,mm\n")
    rows = read_results([old])
    assert rows.loc[0, "protocol"] == "" and rows.loc[0, "schedule"] == ""

"""Registries: duplicates, close matches, keyword-only builders, entry-point plugins."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hpbench
from hpbench.data.specs import get_dataset
from hpbench.models import _registry
from hpbench.models._registry import ModelRegistry
from hpbench.registry import DuplicateNameError, Registry, UnknownNameError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_duplicates_rejected_and_unknown_names_suggest_close_matches():
    registry: Registry[int] = Registry("widget")
    registry.add("resnet18", 1)
    registry.register("resnet50")(2)
    with pytest.raises(DuplicateNameError, match="'resnet18' is already registered"):
        registry.add("resnet18", 3)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'resnet19'; did you mean resnet18"):
        registry.get("resnet19")
    with pytest.raises(UnknownNameError) as caught:
        registry.get("zzz")
    assert "did you mean" not in str(caught.value) and "registered: resnet18, resnet50" in str(caught.value)
    with pytest.raises(ValueError):
        registry.add(" padded", 4)


def test_listing_uses_fnmatch_and_natural_order():
    registry: Registry[int] = Registry("widget")
    for name in ["net10", "net2", "ours-split", "ours", "net1"]:
        registry.add(name, 0)
    assert registry.names() == ["net1", "net2", "net10", "ours", "ours-split"]
    assert registry.names("ours*") == ["ours", "ours-split"]
    assert "net2" in registry and "net3" not in registry and len(registry) == 5


def test_model_builders_must_be_keyword_only():
    registry = ModelRegistry("model")

    def positional(num_joints=14):
        return num_joints

    with pytest.raises(TypeError, match="keyword-only.*num_joints"):
        registry.register("bad")(positional)

    @registry.register("good")
    def good(*, num_joints: int = 14):
        return num_joints

    assert registry.get("good")(num_joints=3) == 3


def test_create_model_drops_none_and_takes_joints_from_the_dataset():
    icvl = hpbench.create_model("tinycnn", dataset="icvl", input_size=None)
    assert icvl.num_joints == 16 and icvl.input_size == 128
    assert hpbench.create_model("tinycnn", num_joints=5).num_joints == 5
    with pytest.raises(ValueError, match="contradicts"):
        hpbench.create_model("tinycnn", num_joints=5, dataset="nyu")
    with pytest.raises(UnknownNameError, match="did you mean tinycnn"):
        hpbench.create_model("tinycn")
    assert hpbench.list_models("tiny*") == ["tinycnn"]
    assert hpbench.create_model("tinycnn", dataset=get_dataset("nyu")).num_joints == 14  # a spec, as the library passes


@pytest.fixture()
def plugin_dist(tmp_path, monkeypatch):
    """A real installed-looking distribution on sys.path declaring hpbench.models entry points."""
    (tmp_path / "goodplugin.py").write_text(textwrap.dedent("""
        from hpbench import register_model
        from hpbench.models.meanpose import MeanPose

        @register_model("plugin-mean")
        def plugin_mean(*, num_joints: int = 14):
            return MeanPose(num_joints=num_joints)

        def direct(*, num_joints: int = 14):
            return MeanPose(num_joints=num_joints)
    """))
    (tmp_path / "brokenplugin.py").write_text("raise ImportError('needs a package that is not installed')\n")
    info = tmp_path / "hpbench_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hpbench-test-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[hpbench.models]\ngood = goodplugin\ndirect-mean = goodplugin:direct\nbroken = brokenplugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for module in ("goodplugin", "brokenplugin"):
        sys.modules.pop(module, None)


def test_entry_point_plugins_load_lazily_and_broken_ones_are_skipped(plugin_dist, monkeypatch):
    registry = ModelRegistry("model", entry_point_group="hpbench.models")
    monkeypatch.setattr(hpbench, "register_model", registry.register)
    assert "goodplugin" not in sys.modules  # nothing imported before the first lookup
    with pytest.warns(UserWarning, match="skipped model plugin 'broken'"):
        names = registry.names()
    assert {"plugin-mean", "direct-mean"} <= set(names)
    assert registry.get("direct-mean")(num_joints=3).num_joints == 3
    assert "needs a package that is not installed" in registry.plugin_errors["broken"]
    assert "good" not in registry.plugin_errors


def _readme_python(marker: str) -> str:
    """The README's python block that contains ``marker``."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S) if marker in b]
    assert len(blocks) == 1, f"one README python block with {marker!r}, found {len(blocks)}"
    return blocks[0]


def test_the_readme_add_a_model_snippet_runs_as_written(monkeypatch):
    fresh = ModelRegistry("model")
    monkeypatch.setattr(hpbench, "register_model", fresh.register)  # the snippet's import; no leak into the zoo
    exec(compile(_readme_python('@register_model("mynet")'), str(README), "exec"), {})
    model = fresh.get("mynet")(num_joints=3)
    joints = model(torch.rand(2, 1, 128, 128))
    assert joints.shape == (2, 3, 3) and model.loss(joints, torch.zeros(2, 3, 3)).isfinite()


def test_the_readme_backbone_snippet_runs_as_written(monkeypatch):
    fresh: Registry = Registry("backbone")
    monkeypatch.setattr(_registry, "backbones", fresh)  # what create_backbone looks up
    monkeypatch.setattr(hpbench.models, "register_backbone", fresh.register)  # the snippet's import
    exec(compile(_readme_python('@register_backbone("mybackbone")'), str(README), "exec"), {})
    model = hpbench.create_model("a2j@mybackbone", dataset="nyu")
    assert model.backbone.channels == (256, 512) and model(torch.rand(1, 1, 176, 176)).shape == (1, 14, 3)

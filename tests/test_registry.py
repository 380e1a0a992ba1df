"""Registries: duplicates, close matches, keyword-only builders, entry-point plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

import hpbench
from hpbench.registry import DuplicateNameError, ModelRegistry, Registry, UnknownNameError


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


@pytest.fixture()
def plugin_dist(tmp_path, monkeypatch):
    """A real installed-looking distribution on sys.path declaring hpbench.models entry points."""
    (tmp_path / "goodplugin.py").write_text(textwrap.dedent("""
        from hpbench.registry import register_model
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
    monkeypatch.setattr("hpbench.registry.register_model", registry.register)
    assert "goodplugin" not in sys.modules  # nothing imported before the first lookup
    with pytest.warns(UserWarning, match="skipped model plugin 'broken'"):
        names = registry.names()
    assert {"plugin-mean", "direct-mean"} <= set(names)
    assert registry.get("direct-mean")(num_joints=3).num_joints == 3
    assert "needs a package that is not installed" in registry.plugin_errors["broken"]
    assert "good" not in registry.plugin_errors

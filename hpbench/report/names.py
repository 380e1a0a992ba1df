"""Display names of methods: what a reader of a table or legend sees instead of a registry or file name.

Two kinds of result names reach a report: registry names (``trinet``, ``meanpose``), whose model
card gives the paper, and the community's published prediction files
(``<venue>_<DATASET>_<method>``, e.g. ``CVPR18_NYU_V2V_PoseNet``), whose venue and method are
read off the name with the table below. Anything else (a user's own file) keeps its name.
"""

from __future__ import annotations

import functools
import re

__all__ = ["card_of", "display_name", "is_reference", "published_method"]

# Method part of a published file name -> the method's name as its paper spells it.
_PUBLISHED_METHODS: dict[str, str] = {
    "3DCNN": "3D CNN", "CrossInfoNet": "CrossInfoNet", "DeepModel": "DeepModel", "DeepPrior++": "DeepPrior++",
    "DeepPrior++_FM": "DeepPrior++ FM", "Feedback": "Feedback", "Generalized_Feedback": "Generalized Feedback",
    "Guo_Basic": "Guo-Basic", "HandPointNet": "Hand PointNet", "LieX": "Lie-X", "LRF_Results": "LRF",
    "murauer_n72757_uvd": "MURAUER", "Point-to-Point": "Point-to-Point", "Pose_REN": "Pose-REN",
    "Prior": "DeepPrior", "Prior-Refinement": "DeepPrior-Refine", "REN_4x6x6": "REN-4x6x6",
    "REN_9x6x6": "REN-9x6x6", "SHPR_Net": "SHPR-Net", "SHPR_Net_frontal": "SHPR-Net frontal",
    "SHPR_Net_three": "SHPR-Net three-view", "SRNet": "SRNet", "TriHorn_Net": "TriHorn-Net",
    "V2V_PoseNet": "V2V-PoseNet", "WHSP-Net": "WHSP-Net", "denseReg": "DenseReg",
}
_VENUES: dict[str, str] = {"ArXiv": "arXiv"}
# Published file method -> the registry model that reimplements it (its card gives the cost).
_REIMPLEMENTED: dict[str, str] = {"TriHorn_Net": "trinet", "V2V_PoseNet": "v2v"}
_FILE = re.compile(r"^(?P<venue>[A-Za-z]+\d*)_(?:(?:ICVL|NYU|MSRA)_)?(?P<method>.+?)(?P<ori>_ori)?$")
# Journals without a conference-style acronym in the card's citation.
_JOURNALS: dict[str, str] = {"Expert Systems with Applications": "ESWA"}
_REFERENCES: dict[str, str] = {"meanpose": "Mean pose (floor)", "tinycnn": "Tiny CNN (reference)"}


@functools.cache
def _card(name: str):  # -> hpbench.cards.ModelCard | None
    from hpbench.cards import CardError, card_names, load_card

    if name not in card_names():
        return None
    try:
        return load_card(name)
    except CardError:
        return None


def card_of(model: str):  # -> hpbench.cards.ModelCard | None
    """The model card of registry name ``model``, or of the model reimplementing a published file's method."""
    found = published_method(model)
    return _card(_REIMPLEMENTED.get(found[1], model) if found else model)


def published_method(model: str) -> tuple[str, str, bool] | None:
    """(venue, method key, original-output file) of a published prediction file's stem; None otherwise."""
    match = _FILE.match(model)
    if match is None or match["method"] not in _PUBLISHED_METHODS:
        return None
    return match["venue"], match["method"], bool(match["ori"])


def is_reference(model: str) -> bool:
    """True for hpbench's reference models (a floor such as the mean pose): never a table's "best"."""
    card = _card(model)
    return model in _REFERENCES or (card is not None and card.paper.lower().startswith("none"))


def _venue_of(citation: str) -> str:
    """"ICCV19" from "..., ICCV 2019"; a journal's acronym and year; "" when the citation has none."""
    conference = re.search(r"\b([A-Z]{3,})\s+((?:19|20)\d\d)\b", citation)
    if conference:
        return f"{conference[1]}{conference[2][2:]}"
    year = re.search(r"\b((?:19|20)\d\d)\b", citation)
    journal = next((short for long, short in _JOURNALS.items() if long in citation), "")
    return f"{journal}{year[1][2:]}" if journal and year else year[1] if year else ""


def _from_card(model: str, citation: str) -> str:
    """"A2J (ICCV19)" from the card's title "A2J: ..."; ours and its variants: "Ours", "Ours-split"."""
    base, _, variant = model.partition("@")
    title = re.search(r'"([^"]+)"', citation)
    if title is None or ":" not in title[1]:
        return "Ours" + base[len("ours"):] if base.startswith("ours") else model
    method = title[1].split(":", 1)[0].strip()
    method += f"-{variant}" if variant else ""
    venue = _venue_of(citation)
    return f"{method} ({venue})" if venue else method


@functools.cache
def display_name(model: str) -> str:
    """The name a reader sees: "V2V-PoseNet (CVPR18)" for ``CVPR18_NYU_V2V_PoseNet``, "A2J (ICCV19)" for ``a2j``,
    "Mean pose (floor)" for ``meanpose``; an unknown name is returned unchanged."""
    if model in _REFERENCES:
        return _REFERENCES[model]
    found = published_method(model)
    if found:
        venue, method, original = found
        where = _VENUES.get(venue, venue) + (", original output" if original else "")
        return f"{_PUBLISHED_METHODS[method]} ({where})"
    card = _card(model)
    if card is None:
        return model
    if card.paper.lower().startswith("none"):
        return f"{model} (reference)"
    return _from_card(model, card.paper)

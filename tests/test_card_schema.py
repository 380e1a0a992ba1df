"""The typed card schema (hpbench.cards): every shipped card loads, and each kind of malformed card is
refused with one line naming the file, the table, the field and what was expected."""

from __future__ import annotations

import pytest

from hpbench.cards import (
    CardError,
    Constant,
    Cosine,
    ModelCard,
    Recipe,
    StepDecay,
    _zoo,
    card_names,
    load_card,
    parse_card,
)

# The recipes' optimizer, lr, batch, epochs and schedule, as the cards held them before they were typed
# (free-text schedules: "StepLR: x 0.2 every 10 epochs", "cosine, one cycle", none (the trainer's cosine)).
A2J = ("adam", 3.5e-4, 64, 35, StepDecay(step_epochs=10, gamma=0.2))
OURS = ("adam", 1e-3, 32, 40, Cosine())
RECIPES = {
    "a2j": A2J, "a2j@resnet18": A2J, "handfold": ("adam", 1e-3, 32, 400, Constant()),
    "meanpose": ("adam", 1e-2, 32, 5, Cosine()), "ours": OURS, "ours-conv": OURS, "ours-mhsa": OURS,
    "ours-noattn": OURS, "ours-split": OURS, "tinycnn": ("adam", 1e-3, 32, 10, Cosine()), "trinet": OURS,
    "v2v": ("rmsprop", 2.5e-4, 8, 10, Constant()),
}


@pytest.mark.parametrize("name", card_names())
def test_every_shipped_card_loads_into_the_typed_schema(name):
    card = load_card(name)
    assert isinstance(card, ModelCard) and isinstance(card.recipe, Recipe) and card.name == name
    recipe = card.recipe
    assert (recipe.optimizer, recipe.lr, recipe.batch_size, recipe.epochs, recipe.schedule) == RECIPES[name]
    assert all(isinstance(text, str) for text in card.notes.values())


def test_the_recipes_hyperparameters_beyond_lr_are_the_cards():
    assert load_card("a2j").recipe.weight_decay == 1e-4
    handfold = load_card("handfold").recipe  # the original's Adam (betas 0.5, 0.999; eps 1e-6)
    assert (handfold.betas, handfold.eps) == ((0.5, 0.999), 1e-6)
    assert load_card("v2v").recipe.momentum == 0.0


A2J_TEXT = _zoo().joinpath("a2j.toml").read_text(encoding="utf-8")

MALFORMED = {
    "unknown key in [recipe]": (
        ("lr = 3.5e-4", "lr_ = 3.5e-4"),
        "zoo/a2j.toml: [recipe] lr_: unknown field (did you mean lr? expected one of: optimizer, lr, weight_decay, "
        "momentum, betas, eps, batch_size, epochs, schedule, augment, mixed_precision)"),
    "typo'd key": (
        ("batch_size = 64", "batchsize = 64"),
        "zoo/a2j.toml: [recipe] batchsize: unknown field (did you mean batch_size? expected one of: optimizer, lr, "
        "weight_decay, momentum, betas, eps, batch_size, epochs, schedule, augment, mixed_precision)"),
    "string for an integer": (
        ("steps = 20", 'steps = "5"'),
        'zoo/a2j.toml: [quick] steps: expected an integer >= 1, got the string "5"'),
    "string for a shape": (
        ("input_shape = [1, 176, 176]", 'input_shape = "1x128x128"'),
        'zoo/a2j.toml: input_shape: expected a list, each an integer >= 1, got the string "1x128x128"'),
    "string for a number": (
        ("lr = 3.5e-4", 'lr = "fast"'),
        'zoo/a2j.toml: [recipe] lr: expected a number > 0, got the string "fast"'),
    "unknown schedule": (
        ('kind = "step"', 'kind = "steplr"'),
        'zoo/a2j.toml: [recipe.schedule] kind: expected one of "cosine", "step", "constant", got the string "steplr"'),
    "free-text schedule": (
        ('schedule = { kind = "step", step_epochs = 10, gamma = 0.2 }', 'schedule = "StepLR: x 0.2 every 10 epochs"'),
        'zoo/a2j.toml: [recipe] schedule: expected a table with kind = "cosine" | "step" | "constant", '
        'got the string "StepLR: x 0.2 every 10 epochs"'),
    "schedule without its parameter": (
        (", gamma = 0.2 }", " }"),
        "zoo/a2j.toml: [recipe.schedule] gamma: missing (expected a number > 0)"),
    "unknown optimizer": (
        ('optimizer = "adam"', 'optimizer = "lion"'),
        'zoo/a2j.toml: [recipe] optimizer: expected one of "adam", "adamw", "sgd", "rmsprop", got the string "lion"'),
    "bool for an int": (
        ("epochs = 35", "epochs = true"),
        "zoo/a2j.toml: [recipe] epochs: expected an integer >= 1, got the boolean true"),
    "bool for a count in a dataset table": (
        ("params = 42687424", "params = false"),
        "zoo/a2j.toml: [declared.nyu] params: expected an integer >= 0, got the boolean false"),
    "hyperparameter of another optimizer": (
        ("weight_decay = 1e-4", "weight_decay = 1e-4\nmomentum = 0.9"),
        "zoo/a2j.toml: [recipe]: momentum applies to sgd and rmsprop, not adam"),
    "missing recipe field": (
        ("augment = true\n", ""),
        "zoo/a2j.toml: [recipe] augment: missing (expected true or false)"),
    "non-text note": (
        ("[notes]\n", "[notes]\nreviewed = 2019\n"),
        "zoo/a2j.toml: [notes] reviewed: expected a string, got the integer 2019"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_card_is_refused_with_one_line_naming_file_table_field_and_expectation(case):
    (old, new), expected = MALFORMED[case]
    assert A2J_TEXT.count(old) == 1, old
    with pytest.raises(CardError) as refused:
        parse_card(A2J_TEXT.replace(old, new), "a2j")
    message = str(refused.value)
    assert "\n" not in message
    assert message == expected


def test_a_card_whose_name_is_not_its_file_name_is_refused():
    with pytest.raises(CardError) as refused:
        parse_card(A2J_TEXT, "a2x")
    assert str(refused.value) == 'zoo/a2x.toml: name: expected "a2x" (the file name), got the string "a2j"'


def test_hpbench_ls_reports_a_malformed_card_in_one_line_and_lists_the_rest(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import hpbench.cards as cards
    from hpbench.cli import app

    for name in card_names():
        (tmp_path / f"{name}.toml").write_text(_zoo().joinpath(f"{name}.toml").read_text(encoding="utf-8"))
    (tmp_path / "a2j.toml").write_text(A2J_TEXT.replace("input_shape = [1, 176, 176]", 'input_shape = "1x128x128"'))
    monkeypatch.setattr(cards, "_zoo", lambda: tmp_path)
    result = CliRunner().invoke(app, ["ls", "a2j*"], env={"COLUMNS": "250"})
    assert "Traceback" not in result.output and "a2j@resnet18" in result.output
    expected = 'zoo/a2j.toml: input_shape: expected a list, each an integer >= 1, got the string "1x128x128"'
    assert expected in result.output

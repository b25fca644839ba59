"""The step-by-step JSON parser gives exactly what json.loads gives, and refuses what it refuses."""

from __future__ import annotations

import json
import random

import pytest
from world import World

from carveout.recommend import artefact, stepwise_json, train_cell
from carveout.recommend.artefact import IDS_FILE, RANKER_FILE


def random_value(rng: random.Random, depth: int) -> object:
    kind = rng.randrange(8 if depth > 0 else 6)
    if kind == 0:
        return rng.randint(-(10**12), 10**12)
    if kind == 1:
        return rng.uniform(-1e6, 1e6)
    if kind == 2:
        return "".join(rng.choice('ab"\\\n\té€ 🎬,:{}[]') for _ in range(rng.randrange(6)))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return []
    if kind == 5:
        return {}
    if kind == 6:
        return [random_value(rng, depth - 1) for _ in range(rng.randrange(5))]
    return {
        "".join(rng.choice('kq"é,') for _ in range(rng.randrange(4))): random_value(rng, depth - 1)
        for _ in range(rng.randrange(5))
    }


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_equals_json_loads_compact_and_spaced(seed: int, depth: int) -> None:
    rng = random.Random(seed)
    value = random_value(rng, 4)
    for text in (
        json.dumps(value, separators=(",", ":")),
        json.dumps(value, indent=2),
        " \n" + json.dumps(value, ensure_ascii=False) + "\t ",
    ):
        assert stepwise_json.loads(text, depth) == json.loads(text)


def test_duplicate_keys_keep_the_last_as_json_loads_does() -> None:
    text = '{"a": 1, "b": {"x": 1, "x": 2}, "a": 3}'
    assert stepwise_json.loads(text) == json.loads(text) == {"a": 3, "b": {"x": 2}}
    assert list(stepwise_json.loads(text)) == list(json.loads(text))


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"a" 1}', '{"a": 1,}', "[1, 2", "[1 2]", '{"a": 1} x', "{1: 2}", '{"a": tru}', "]"],
)
def test_invalid_json_is_refused_like_json_loads(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        stepwise_json.loads(text)


def test_a_trained_versions_files_parse_the_same(trained_world: World) -> None:
    manifest = train_cell(trained_world.cell)
    folder = artefact.models_dir(trained_world.cell) / manifest.version
    for name in (RANKER_FILE, IDS_FILE):
        text = (folder / name).read_text("utf-8")
        assert stepwise_json.loads(text) == json.loads(text)

"""The residency policy: parsing, contradictions refused, jurisdictions routed to one cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from carveout.cells import DEFAULT_POLICY, POLICY_FILE, init_data_dir, load_policy, parse_policy
from carveout.core import InvalidInput, PolicyError
from carveout.storage import schema_head

SITES = """\
version = 1

[sites.us]
description = "United States"

[sites.de]
description = "Germany"

[sites.sg]
"""

TWO_CELLS = (
    SITES
    + """
[cells.global]
jurisdictions = ["*"]
primary_site = "us"
backup_site = "sg"

[cells.eu]
jurisdictions = ["de", "FR", " it "]
primary_site = "de"
content_exchange = true
"""
)


def test_default_policy_is_one_global_cell_serving_everything() -> None:
    policy = parse_policy(DEFAULT_POLICY)
    assert policy.names == ("global",)
    (cell,) = policy.cells
    assert cell.serves_rest
    assert cell.jurisdictions == ()
    assert (cell.primary_site, cell.backup_site) == ("us", "sg")
    assert cell.storage == "sqlite"
    assert cell.content_exchange
    assert set(policy.sites) == {"us", "sg"}
    for code in ("US", "de", "CN", "br"):
        assert policy.cell_for(code).name == "global"


def test_cell_for_routes_explicit_codes_and_the_rest() -> None:
    policy = parse_policy(TWO_CELLS)
    assert policy.cell("eu").jurisdictions == ("DE", "FR", "IT")
    assert not policy.cell("eu").serves_rest
    for code in ("DE", "fr", " it"):
        assert policy.cell_for(code).name == "eu"
    for code in ("US", "CN", "GB", "CH"):
        assert policy.cell_for(code).name == "global"


def test_without_a_star_cell_unlisted_codes_have_no_cell() -> None:
    policy = parse_policy(
        SITES + '[cells.eu]\njurisdictions = ["DE"]\nprimary_site = "de"\n', "p.toml"
    )
    assert policy.cell_for("DE").name == "eu"
    with pytest.raises(InvalidInput, match="serves jurisdiction US"):
        policy.cell_for("US")


def test_unknown_cell_name() -> None:
    with pytest.raises(PolicyError, match="nowhere"):
        parse_policy(DEFAULT_POLICY).cell("nowhere")


def test_a_jurisdiction_mapped_to_two_cells_is_refused() -> None:
    text = TWO_CELLS + '\n[cells.dach]\njurisdictions = ["AT", "DE"]\nprimary_site = "de"\n'
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "policy.toml")
    message = str(info.value)
    assert "DE" in message
    assert "'eu'" in message and "'dach'" in message
    assert "policy.toml" in message


@pytest.mark.parametrize("code", ["XX", "USA", "", "12"])
def test_an_unknown_jurisdiction_code_is_refused(code: str) -> None:
    text = SITES + f'[cells.x]\njurisdictions = ["{code}"]\nprimary_site = "us"\n'
    with pytest.raises(PolicyError, match=r"cells\.x"):
        parse_policy(text)


@pytest.mark.parametrize("key", ["primary_site", "backup_site"])
def test_an_undeclared_site_is_refused(key: str) -> None:
    sites = {"primary_site": '"us"', "backup_site": '"de"'} | {key: '"mars"'}
    lines = "\n".join(f"{k} = {v}" for k, v in sites.items())
    text = SITES + f'[cells.global]\njurisdictions = ["*"]\n{lines}\n'
    with pytest.raises(PolicyError, match=f"{key}.*mars.*not declared"):
        parse_policy(text)


def test_two_cells_serving_the_rest_are_refused() -> None:
    text = TWO_CELLS + '\n[cells.other]\njurisdictions = ["*"]\nprimary_site = "us"\n'
    with pytest.raises(PolicyError, match=r"only one cell may serve '\*'"):
        parse_policy(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("this is [not toml", "not valid TOML"),
        ("version = 2\n[cells.a]\n", "version = 1"),
        ("version = 1\n", r"no \[cells"),
        (SITES + "[cells.a]\nprimary_site = 'us'\n", "non-empty list"),
        (SITES + "[cells.a]\njurisdictions = []\nprimary_site = 'us'\n", "non-empty list"),
        (SITES + "[cells.a]\njurisdictions = ['*']\n", "primary_site is required"),
        (
            SITES + "[cells.a]\njurisdictions = ['*']\nprimary_site = 'us'\nbackup_site = 'us'\n",
            "must differ",
        ),
        (SITES + "[cells.Big]\njurisdictions = ['*']\nprimary_site = 'us'\n", "lower-case"),
        (
            SITES
            + "[cells.a]\njurisdictions = ['*']\nprimary_site = 'us'\nstorage = 'mysql://x'\n",
            "storage",
        ),
    ],
)
def test_malformed_policies_are_refused(text: str, match: str) -> None:
    with pytest.raises(PolicyError, match=match):
        parse_policy(text)


def test_postgresql_storage_is_accepted() -> None:
    text = SITES + (
        "[cells.a]\njurisdictions = ['*']\nprimary_site = 'us'\n"
        "storage = 'postgresql://postgres@127.0.0.1:5432/cell_a'\n"
    )
    assert parse_policy(text).cell("a").storage.startswith("postgresql://")


def test_load_policy_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="carveout init"):
        load_policy(tmp_path / POLICY_FILE)


def test_init_data_dir_writes_the_default_policy(tmp_path: Path) -> None:
    deployment = init_data_dir(tmp_path / "data")
    try:
        assert (tmp_path / "data" / POLICY_FILE).read_text(encoding="utf-8") == DEFAULT_POLICY
        assert [c.name for c in deployment.cells()] == ["global"]
        assert deployment.cell_for("JP").store.schema_version() == schema_head()
    finally:
        deployment.close()


def test_init_data_dir_refuses_a_bad_policy_without_writing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = TWO_CELLS + '\n[cells.dach]\njurisdictions = ["DE"]\nprimary_site = "de"\n'

    # Nothing there yet: no policy file and no cell is created.
    with pytest.raises(PolicyError):
        init_data_dir(data, bad)
    assert not (data / POLICY_FILE).exists()
    assert not (data / "cells").exists()

    # A policy already in force stays exactly as it was.
    init_data_dir(data, TWO_CELLS).close()
    policy_file = data / POLICY_FILE
    before = policy_file.read_bytes()
    cells_before = sorted(p.name for p in (data / "cells").iterdir())
    with pytest.raises(PolicyError):
        init_data_dir(data, bad)
    assert policy_file.read_bytes() == before
    assert sorted(p.name for p in (data / "cells").iterdir()) == cells_before == ["eu", "global"]


def test_site_paths_survive_a_rewrite_of_the_policy() -> None:
    from carveout.cells import render_policy, with_new_cell
    from carveout.cells.policy import CellSpec

    text = DEFAULT_POLICY.replace(
        '[sites.sg]\ndescription = "Singapore (backup site)"',
        '[sites.sg]\ndescription = "Singapore (backup site)"\npath = "/mnt/sg-backups"',
    )
    policy = parse_policy(text)
    assert policy.site_paths == {"sg": "/mnt/sg-backups"}
    target = CellSpec("na-anz", ("CA", "US"), False, "us", "sg", False, "sqlite")
    rewritten = parse_policy(render_policy(with_new_cell(policy, target)))
    assert rewritten.site_paths == {"sg": "/mnt/sg-backups"}
    assert rewritten.cell_for("CA").name == "na-anz"
    assert rewritten.cell_for("GB").name == "global"
    with pytest.raises(PolicyError, match=r"sites\.sg\.path"):
        parse_policy(text.replace('path = "/mnt/sg-backups"', "path = 3"))

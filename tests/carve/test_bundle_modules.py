"""The transfer bundle's modules: small, each named for what it does, importing one way only
(format and crypto at the bottom, export and import on top, `bundle` only re-exporting)."""

from __future__ import annotations

import ast
from pathlib import Path

import carveout.carve

CARVE = Path(carveout.carve.__file__).parent

# Who may import whom among the bundle's modules: a module only imports those below it.
ALLOWED = {
    "bundle": {"bundle_export", "bundle_format", "bundle_import"},
    "bundle_export": {"bundle_crypto", "bundle_format"},
    "bundle_import": {"bundle_crypto", "bundle_format", "bundle_load", "bundle_verify"},
    "bundle_load": {"bundle_crypto", "bundle_format", "bundle_verify"},
    "bundle_verify": {"bundle_crypto", "bundle_format"},
    "bundle_format": {"bundle_crypto"},
    "bundle_crypto": set(),
}


def _bundle_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["carveout", "carve"] and len(parts) == 3:
                found.add(parts[2])
            elif node.module == "carveout.carve":
                found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("bundle")}


def test_bundle_modules_import_one_way_and_stay_small() -> None:
    modules = sorted(p for p in CARVE.glob("bundle*.py"))
    assert {p.stem for p in modules} <= set(ALLOWED), "a new bundle module: place it in ALLOWED"
    for path in modules:
        imports = _bundle_imports(path)
        assert imports <= ALLOWED[path.stem], f"{path.name} imports {imports - ALLOWED[path.stem]}"
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.name} has {lines} lines: split it by concept"


def test_the_public_names_are_where_callers_import_them() -> None:
    from carveout.carve import bundle

    for name in ("export_bundle", "import_bundle", "encode_rows", "decode_rows", "ImportReport"):
        assert name in bundle.__all__ and hasattr(bundle, name)

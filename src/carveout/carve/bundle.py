"""The transfer bundle ("ship the hard drive"): J's rows and blobs written to a folder, chunked,
sealed to the receiving organisation's key, with per-chunk sha256 and a root digest; imported on
the other side into a new cell, every chunk checked before anything loads, resumable.

The public names, from the modules that do each part: bundle_format (manifest, chunk
plaintext, checks on disk), bundle_export, bundle_import, bundle_verify (the checks beside the
load) and bundle_crypto (keys and seals)."""

from carveout.carve.bundle_export import export_bundle
from carveout.carve.bundle_format import (
    FORMAT,
    MANIFEST,
    READABLE,
    ROWS_PER_CHUNK,
    Progress,
    check_chunks,
    decode_rows,
    encode_rows,
    read_manifest,
)
from carveout.carve.bundle_import import ImportReport, import_bundle

__all__ = [
    "FORMAT",
    "MANIFEST",
    "READABLE",
    "ROWS_PER_CHUNK",
    "ImportReport",
    "Progress",
    "check_chunks",
    "decode_rows",
    "encode_rows",
    "export_bundle",
    "import_bundle",
    "read_manifest",
]

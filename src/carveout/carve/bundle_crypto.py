"""Sealing a transfer bundle to the receiving organisation's X25519 key.

Each bundle has a fresh ephemeral key pair; ECDH with the recipient's public key and HKDF give
one AES-256-GCM key. Every chunk is sealed with it, its index bound in as associated data, so a
chunk moved to another position or bundle fails to open. The manifest's sha256 is sealed with it
too, so what the manifest says (jurisdictions, tables and their digests, the chunk list) cannot
be changed after export by anyone without the key.

What this does not prove is who sent the bundle: anyone holding the recipient's public key can
seal a bundle to it. The import's row checks (every row domiciled in the bundle's
jurisdictions), the verify and the leak scan bound what such a bundle can do."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from carveout.core import CarveoutError

NONCE = 12
KEY_CHECK = b"carveout transfer bundle v1"
KEY_CHECK_INDEX = -1
MANIFEST_SEAL = "manifest_seal"  # the manifest's field holding its own sealed digest
MANIFEST_SEAL_INDEX = -2


class BundleError(CarveoutError):
    status = 422


def generate_keypair(folder: Path) -> tuple[Path, Path]:
    """`recipient.key` (private, 0600) and `recipient.pub` (public, to send to the sender)."""
    folder.mkdir(parents=True, exist_ok=True)
    private = X25519PrivateKey.generate()
    key_path, pub_path = folder / "recipient.key", folder / "recipient.pub"
    if key_path.exists():
        raise BundleError(f"{key_path} exists: refusing to overwrite a private key")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


def load_public(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read the recipient's public key {path}: {exc}") from exc
    if not isinstance(key, X25519PublicKey):
        raise BundleError(f"{path} is not an X25519 public key")
    return key


def load_private(path: Path) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"cannot read the private key {path}: {exc}") from exc
    if not isinstance(key, X25519PrivateKey):
        raise BundleError(f"{path} is not an X25519 private key")
    return key


def _derive(shared: bytes, bundle_id: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=bundle_id.encode(), info=KEY_CHECK
    ).derive(shared)
    return AESGCM(key)


def sender_cipher(recipient: X25519PublicKey, bundle_id: str) -> tuple[AESGCM, bytes]:
    """The bundle's cipher and the ephemeral public key (raw bytes) the recipient needs."""
    ephemeral = X25519PrivateKey.generate()
    public = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return _derive(ephemeral.exchange(recipient), bundle_id), public


def recipient_cipher(private: X25519PrivateKey, ephemeral_public: bytes, bundle_id: str) -> AESGCM:
    return _derive(private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public)), bundle_id)


def seal(cipher: AESGCM, index: int, plain: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + cipher.encrypt(nonce, plain, f"chunk/{index}".encode())


def open_sealed(cipher: AESGCM, index: int, sealed: bytes, what: str) -> bytes:
    try:
        return cipher.decrypt(sealed[:NONCE], sealed[NONCE:], f"chunk/{index}".encode())
    except InvalidTag as exc:
        raise BundleError(f"{what} does not decrypt: tampered or from another bundle") from exc


def key_check(cipher: AESGCM) -> bytes:
    return seal(cipher, KEY_CHECK_INDEX, KEY_CHECK)


def check_key(cipher: AESGCM, sealed: bytes) -> None:
    try:
        ok = cipher.decrypt(sealed[:NONCE], sealed[NONCE:], b"chunk/-1") == KEY_CHECK
    except InvalidTag:
        ok = False
    if not ok:
        raise BundleError("the bundle is encrypted to another key: this private key cannot open it")


def _manifest_digest(manifest: dict[str, Any]) -> bytes:
    """sha256 of every field but the seal itself, in one canonical JSON form."""
    fields = {k: v for k, v in manifest.items() if k != MANIFEST_SEAL}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).digest()


def seal_manifest(cipher: AESGCM, manifest: dict[str, Any]) -> str:
    """The value of the manifest's `manifest_seal` field (hex)."""
    return seal(cipher, MANIFEST_SEAL_INDEX, _manifest_digest(manifest)).hex()


def check_manifest(cipher: AESGCM, manifest: dict[str, Any], what: str) -> None:
    """Refuse a manifest whose seal is missing or does not match what it says now."""
    sealed = manifest.get(MANIFEST_SEAL)
    if not isinstance(sealed, str):
        raise BundleError(f"{what} has no seal: it was not written by carveout's export")
    try:
        raw = bytes.fromhex(sealed)
        ok = cipher.decrypt(raw[:NONCE], raw[NONCE:], f"chunk/{MANIFEST_SEAL_INDEX}".encode())
    except (ValueError, InvalidTag):
        ok = b""
    if ok != _manifest_digest(manifest):
        raise BundleError(f"{what} was changed after the bundle was sealed: refusing it")

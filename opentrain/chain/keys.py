"""Signing keys: encrypted eth-account keystores (scrypt), never printed or logged."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from opentrain.settings import Settings


class KeyError_(RuntimeError):
    """A key that cannot be created, found or decrypted; the message is one line."""


def create_keystore(path: Path, password: str, private_key: str | None = None) -> str:
    """Write a new (or imported) key to an encrypted keystore; returns its address."""
    if path.exists():
        raise KeyError_(f"{path} already exists: refusing to overwrite a keystore")
    if len(password) < 8:
        raise KeyError_("keystore password must be at least 8 characters")
    account = Account.from_key(private_key) if private_key else Account.create()
    document = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)
    return str(account.address)


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyError_(f"no keystore at {path}: run `opentrain node init`") from None
    except ValueError:
        raise KeyError_(f"{path} is not a keystore (invalid JSON)") from None
    try:
        key = Account.decrypt(document, password)
    except ValueError:
        raise KeyError_(f"wrong password for keystore {path}") from None
    return Account.from_key(key)


def load_signer(settings: Settings) -> LocalAccount:
    """The key the settings name: a keystore (preferred) or a raw key from the environment."""
    keystore = settings.keystore or settings.home / "keystore.json"
    if keystore.exists():
        if settings.keystore_password is None:
            raise KeyError_("set OPENTRAIN_KEYSTORE_PASSWORD to unlock " + str(keystore))
        return load_keystore(keystore, settings.keystore_password.get_secret_value())
    if settings.private_key is not None:
        return Account.from_key(settings.private_key.get_secret_value())
    raise KeyError_(f"no key: run `opentrain node init` (looked for {keystore})")

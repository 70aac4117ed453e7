"""Keys the services need, for the local stack only: generated once, kept in the git-ignored state.

Production and docker-compose take them from their own secret store through the same variables.
A variable already set in the environment wins over the generated file.

Kafka passwords (SASL/SCRAM, one per principal of ``jmo_devstack.acls``) are kept in the same file
as ``JMO_KAFKA_PASSWORD_<PRINCIPAL>``; a process gets only its own, as ``JMO_KAFKA_USERNAME`` /
``JMO_KAFKA_PASSWORD`` (see :func:`kafka_identity`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

#: Each is 32 random bytes, base64.
SERVICE_KEYS = ("JMO_OTP_HMAC_KEY", "JMO_OTP_DELIVERY_KEY", "JMO_NIK_INDEX_KEY", "JMO_DATA_KEY", "JMO_NOTIFICATION_DATA_KEY")


def new_keys() -> dict[str, str]:
    return {name: base64.b64encode(os.urandom(32)).decode() for name in SERVICE_KEYS}


def kafka_password_variables() -> dict[str, str]:
    """principal -> the variable holding its password (the admin included)."""
    from .acls import ADMIN, principals

    return {p: "JMO_KAFKA_PASSWORD_" + p.upper().replace("-", "_") for p in (*principals(), ADMIN)}


def new_kafka_passwords() -> dict[str, str]:
    """A fresh password for every principal, by principal name."""
    return {principal: secrets.token_urlsafe(24) for principal in kafka_password_variables()}


def kafka_identity(principal: str, password: str) -> dict[str, str]:
    """The environment of a process that runs as ``principal``."""
    return {"JMO_KAFKA_USERNAME": principal, "JMO_KAFKA_PASSWORD": password, "JMO_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}


def local_kafka_passwords(path: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """principal -> password, generated into ``path`` on first use, overridden by ``environ``."""
    variables = kafka_password_variables()
    stored = _load(path)
    missing = [p for p, var in variables.items() if var not in stored]
    if missing:
        fresh = new_kafka_passwords()
        _save(path, stored | {variables[p]: fresh[p] for p in missing})
        stored = _load(path)
    return {p: environ.get(var) or stored[var] for p, var in variables.items()}


def _load(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(dict(values), indent=2) + "\n")


def local_secrets(path: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The keys in ``path`` (created with mode 0600 on first use), overridden by ``environ``."""
    if path.exists():
        stored = json.loads(path.read_text())
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = new_keys()
        path.touch(mode=0o600)
        path.write_text(json.dumps(stored, indent=2) + "\n")
    missing = [k for k in SERVICE_KEYS if k not in stored]
    if missing:
        stored |= {k: v for k, v in new_keys().items() if k in missing}
        path.write_text(json.dumps(stored, indent=2) + "\n")
    return {k: environ.get(k) or stored[k] for k in SERVICE_KEYS}

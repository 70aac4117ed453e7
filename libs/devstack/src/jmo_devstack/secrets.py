"""Keys the services need, for the local stack only: generated once, kept in the git-ignored state.

Production and docker-compose take them from their own secret store through the same variables.
A variable already set in the environment wins over the generated file.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path

#: Each is 32 random bytes, base64.
SERVICE_KEYS = ("JMO_OTP_HMAC_KEY", "JMO_OTP_DELIVERY_KEY", "JMO_NIK_INDEX_KEY", "JMO_DATA_KEY")


def new_keys() -> dict[str, str]:
    return {name: base64.b64encode(os.urandom(32)).decode() for name in SERVICE_KEYS}


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

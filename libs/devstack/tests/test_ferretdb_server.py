"""The embedded FerretDB's own command line (deploy/ferretdb/main.go): what it adds to FerretDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient

from jmo_devstack.ferretdb import FerretDBServer
from jmo_devstack.net import free_port

pytestmark = pytest.mark.integration


def test_the_embedded_store_writes_a_cpu_profile_of_its_run_when_asked_and_none_otherwise(tmp_path: Path) -> None:
    profiled = FerretDBServer(tmp_path / "profiled", free_port(), cpu_profile=tmp_path / "ferretdb.pprof", die_with_parent=True)
    plain = FerretDBServer(tmp_path / "plain", free_port(), die_with_parent=True)
    for server in (profiled, plain):
        server.start()
        try:
            assert MongoClient(server.uri, serverSelectionTimeoutMS=5000)["jmo_profiled"]["c"].insert_one({"_id": "x"}).inserted_id == "x"
        finally:
            assert server.stop()
    profile = (tmp_path / "ferretdb.pprof").read_bytes()
    assert profile[:2] == b"\x1f\x8b" and len(profile) > 100  # a gzipped pprof protobuf, closed at SIGTERM
    assert "-cpu-profile" not in plain.command() and sorted(p.name for p in tmp_path.iterdir()) == ["ferretdb.pprof", "plain", "profiled"]

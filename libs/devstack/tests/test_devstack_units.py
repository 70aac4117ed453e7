"""The devstack's pure parts: configuration, pid records, commands, install stamps."""

from __future__ import annotations

import subprocess
from pathlib import Path
import sys

import pytest

from jmo_devstack import install
from jmo_devstack.ferretdb import FerretDBServer
from jmo_devstack.install import install_ferretdb
from jmo_devstack.kafka import KafkaServer, new_cluster_id
from jmo_devstack.paths import StackPaths
from jmo_devstack.processes import PidRecord, terminate
from jmo_devstack.services import SERVICE_PORTS, module_name, template_command
from jmo_devstack.stack import StackConfig

pytestmark = pytest.mark.unit


def test_module_names_use_underscores():
    assert [module_name(s) for s in SERVICE_PORTS] == [
        "jmo_registration", "jmo_identity", "jmo_biometric", "jmo_profile_update", "jmo_notification",
    ]


def test_a_service_command_template_names_python_module_and_service():
    command = template_command("{python} -m {module} --name {service}", python="/py")
    assert command("profile-update") == ["/py", "-m", "jmo_profile_update", "--name", "profile-update"]


def test_the_stack_defaults_to_the_documented_ports():
    config = StackConfig.from_env({})
    assert (config.kafka_port, config.kafka_controller_port, config.ferretdb_port) == (9092, 9093, 27017)
    assert dict(config.health_ports) == SERVICE_PORTS
    assert config.kafka_bootstrap is None and config.mongodb_uri is None and config.topic_prefix == ""


def test_the_environment_names_external_servers_and_moves_ports():
    config = StackConfig.from_env({
        "KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
        "MONGODB_URI": "mongodb://db/",
        "JMO_TOPIC_PREFIX": "dev.",
        "JMO_DEVSTACK_HEALTH_PORT_BASE": "18080",
    })
    assert config.kafka_bootstrap == "broker:9092" and config.mongodb_uri == "mongodb://db/"
    assert config.topic_prefix == "dev."
    assert config.health_ports["registration"] == 18081 and config.health_ports["notification"] == 18085


def test_kafka_is_a_single_kraft_node_on_loopback_without_auto_created_topics(tmp_path):
    props = KafkaServer(tmp_path, 19092, 19093, paths=StackPaths(tmp_path, tmp_path)).properties()
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "6"
    assert props["log.dirs"] == str(tmp_path / "data")


def test_cluster_ids_look_like_kafka_uuids():
    cid = new_cluster_id()
    assert len(cid) == 22 and not cid.startswith("-")


def test_a_pid_record_tells_its_process_from_a_recycled_pid(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    record = PidRecord.of(proc.pid, ["sleeper"])
    record.write(tmp_path / "p.pid")
    assert PidRecord.read(tmp_path / "p.pid") == record
    assert record.alive()
    assert not PidRecord(proc.pid, (record.started or 0) + 1).alive()
    assert terminate(record, timeout=5, popen=proc)
    assert not record.alive()
    assert not terminate(record)


def test_a_missing_or_broken_pid_file_means_nothing_runs(tmp_path):
    assert PidRecord.read(tmp_path / "missing.pid") is None
    (tmp_path / "broken.pid").write_text("not json")
    assert PidRecord.read(tmp_path / "broken.pid") is None


def test_ferretdb_is_not_rebuilt_while_its_sources_are_unchanged(tmp_path):
    src = tmp_path / "deploy" / "ferretdb"
    src.mkdir(parents=True)
    (src / "main.go").write_text("package main\n")
    paths = StackPaths(tmp_path, tmp_path / ".local")
    paths.ferretdb_bin.parent.mkdir(parents=True)
    paths.ferretdb_bin.write_text("binary")
    said: list[str] = []
    stamp = paths.ferretdb_bin.with_name("ferretdb.stamp")
    stamp.write_text(install.ferretdb_digest([src / "main.go"]) + "\n")
    assert install_ferretdb(paths, said.append) is False
    assert "up to date" in said[-1]


def test_paths_live_under_local_unless_moved(tmp_path):
    (tmp_path / "deploy" / "kafka").mkdir(parents=True)
    (tmp_path / "deploy" / "kafka" / "pom.xml").write_text("<project/>")
    paths = StackPaths.discover(tmp_path, environ={})
    assert paths.run == tmp_path / ".local" / "run"
    assert paths.kafka_libs == tmp_path / ".local" / "kafka" / "libs"
    moved = StackPaths.discover(tmp_path, environ={"JMO_DEVSTACK_HOME": str(tmp_path / "other")})
    assert moved.state == tmp_path / "other" / "state" and moved.kafka_libs == paths.kafka_libs


def test_the_ferretdb_patch_still_matches_the_pinned_source() -> None:
    """If FerretDB is upgraded, the _id-index patch must be reviewed, not silently skipped."""
    cache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    for rel, old, _new in install.FERRETDB_PATCHES:
        module, _, inner = rel.partition("/internal/")
        candidates = list(Path(cache).glob("github.com/!ferret!d!b/!ferret!d!b@v1.24.2/internal/" + inner))
        if not candidates:
            pytest.skip("FerretDB sources are not in the Go module cache yet")
        assert old in candidates[0].read_text()


def test_a_log_mentions_a_leaked_value_but_not_the_same_digits_inside_an_id_or_a_timestamp() -> None:
    from jmo_devstack.services import mentions

    line = '{"event": "otp issued", "message_id": "538e31270d6ea84e6103", "timestamp": "2026-11-21T17:05:22.646889Z"}'
    assert not mentions("646889", line) and not mentions("270d6e", line)
    assert mentions("646889", line.replace('"otp issued"', '"otp 646889 issued"'))
    assert mentions("646889", 'code=646889') and mentions("646889", '{"code": "646889"}')
    assert mentions("siti@example.com", "sent to siti@example.com.") and not mentions("siti@example.com", "sent to asiti@example.com")


def test_the_embedded_store_syncs_its_wal_at_checkpoints_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("JMO_FERRETDB_SYNCHRONOUS", raising=False)
    assert "file:" + str(tmp_path / "data") + "/?_pragma=synchronous(NORMAL)" in FerretDBServer(tmp_path).command()
    monkeypatch.setenv("JMO_FERRETDB_SYNCHRONOUS", "full")
    assert "synchronous(FULL)" in " ".join(FerretDBServer(tmp_path).command())
    with pytest.raises(ValueError):
        FerretDBServer(tmp_path, synchronous="NORMAL); DROP")

"""deploy/docker-compose.yml is consistent, checked without Docker (it cannot run here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from jmo_devstack.services import SERVICE_PORTS, module_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
INFRA = ("kafka", "mongodb", "kafka-ui", "sinks")
ONE_SHOTS = ("topics",)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _health_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(map(str, test)) if isinstance(test, list) else str(test)


def test_the_stack_has_the_infrastructure_the_topic_job_and_the_five_services(services):
    assert set(services) == {*INFRA, *ONE_SHOTS, *SERVICE_PORTS}


def test_every_service_has_an_image_or_a_build(services):
    for name, service in services.items():
        assert "image" in service or "build" in service, name


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if name not in ONE_SHOTS:
            assert service.get("healthcheck", {}).get("test"), name


def test_every_app_service_has_environment_and_waits_for_healthy_infrastructure(services):
    for name in (*SERVICE_PORTS, *ONE_SHOTS):
        service = services[name]
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        depends = service["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy", name
    for name in SERVICE_PORTS:
        depends = services[name]["depends_on"]
        assert depends["mongodb"]["condition"] == "service_healthy", name
        assert depends["topics"]["condition"] == "service_completed_successfully", name
        assert services[name]["environment"]["MONGODB_URI"].startswith("mongodb://mongodb:27017/"), name


def test_app_services_run_their_module_from_the_one_repository_image(services):
    images = set()
    for name in SERVICE_PORTS:
        service = services[name]
        assert service["command"] == ["python", "-m", module_name(name)]
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").is_file()
        images.add(service["image"])
    assert len(images) == 1


def test_each_app_health_port_matches_its_healthcheck(services):
    for name, port in SERVICE_PORTS.items():
        service = services[name]
        assert int(service["environment"]["JMO_HEALTH_PORT"]) == port, name
        checked = re.findall(r"127\.0\.0\.1:(\d+)/health", _health_command(service))
        assert checked == [str(port)], name


def test_kafka_ui_points_at_the_kafka_service_as_the_read_only_ops_principal(services):
    env = services["kafka-ui"]["environment"]
    host, port = env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"].split(":")
    assert host == "kafka"
    assert f"INTERNAL://kafka:{port}" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert services["kafka-ui"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert 'username="ops" password="${JMO_KAFKA_PASSWORD_OPS:?' in env["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"]


def _kafka_script(services) -> str:
    return "\n".join(services["kafka"]["command"])


def test_kafka_authenticates_every_client_listener_with_scram_and_authorises_with_the_standard_authorizer(services):
    env, script = services["kafka"]["environment"], _kafka_script(services)
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = re.search(r"^listeners=(.*)$", script, re.M).group(1)
    for listener in listeners.split(","):
        name = listener.split("://")[0]
        assert protocols[name].startswith("SASL_"), name  # no PLAINTEXT listener at all
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert "authorizer.class.name=$$KAFKA_AUTHORIZER_CLASS_NAME" in script
    assert "allow.everyone.if.no.acl.found=false" in script
    assert env["KAFKA_SUPER_USERS"] == "User:jmo-admin"
    assert "--add-scram" in script and "--command-config /tmp/admin.properties" in _health_command(services["kafka"])


def test_kafka_creates_a_scram_user_for_every_principal_from_the_environment(services):
    from jmo_devstack.secrets import kafka_password_variables

    env = services["kafka"]["environment"]
    for principal, variable in kafka_password_variables().items():
        assert re.fullmatch(r"\$\{" + variable + r":\?[^}]*\}", str(env[variable])), principal
        # the script turns the variable's name back into the principal's name
        assert variable.removeprefix("JMO_KAFKA_PASSWORD_").lower().replace("_", "-") == principal


def test_each_service_authenticates_as_itself_with_only_its_own_password(services):
    for name in SERVICE_PORTS:
        env = services[name]["environment"]
        assert env["JMO_KAFKA_USERNAME"] == name
        variable = "JMO_KAFKA_PASSWORD_" + name.upper().replace("-", "_")
        assert re.fullmatch(r"\$\{" + variable + r":\?[^}]*\}", str(env["JMO_KAFKA_PASSWORD"])), name
        assert not [k for k in env if k.startswith("JMO_KAFKA_PASSWORD_")], name  # nobody else's


def test_the_topics_job_creates_the_acls_as_the_admin(services):
    env = services["topics"]["environment"]
    assert re.fullmatch(r"\$\{JMO_KAFKA_PASSWORD_JMO_ADMIN:\?[^}]*\}", env["JMO_KAFKA_PASSWORD_JMO_ADMIN"])


def test_kafka_creates_no_topic_by_accident(services):
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "auto.create.topics.enable=$$KAFKA_AUTO_CREATE_TOPICS_ENABLE" in _kafka_script(services)


def test_mongodb_runs_as_a_replica_set_initiated_by_its_healthcheck(services):
    mongodb = services["mongodb"]
    assert "--replSet" in mongodb["command"]
    assert "rs.initiate" in _health_command(mongodb)


def test_published_ports_are_bound_to_loopback_only(services):
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name}: {mapping}"


def test_every_app_service_gets_every_key_from_the_environment_never_a_value(services):
    from jmo_devstack.secrets import SERVICE_KEYS

    for name in SERVICE_PORTS:
        env = services[name]["environment"]
        for key in SERVICE_KEYS:
            assert key in env, (name, key)
            assert re.fullmatch(r"\$\{" + key + r":\?[^}]*\}", str(env[key])), (name, key, "must come from the environment, and fail when unset")


def test_notification_sends_to_the_sinks_service_on_the_ports_it_listens_on(services):
    env, sinks = services["notification"]["environment"], services["sinks"]
    command = sinks["command"]
    smtp_port, http_port = (command[command.index(flag) + 1] if flag in command else default for flag, default in (("--smtp-port", "2525"), ("--http-port", "8086")))
    assert (env["JMO_SMTP_HOST"], str(env["JMO_SMTP_PORT"])) == ("sinks", smtp_port)
    assert env["JMO_SMS_URL"] == f"http://sinks:{http_port}/messages"
    assert services["notification"]["depends_on"]["sinks"]["condition"] == "service_healthy"
    assert all(port.startswith("127.0.0.1:") for port in sinks["ports"])

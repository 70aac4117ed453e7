"""The JMO stack on loopback without Docker: Kafka (KRaft) and FerretDB from .local/, the services,
topic creation, and the pytest fixtures that give tests real infrastructure.

Entry points: ``python -m jmo_devstack up|down|status|reset|install|create-topics`` and the pytest
plugin ``jmo_devstack.pytest_plugin``.
"""

from .ferretdb import FerretDBServer
from .kafka import KafkaServer
from .services import SERVICE_PORTS, ServiceProcess, module_name
from .topics import create_topics

__all__ = ["SERVICE_PORTS", "FerretDBServer", "KafkaServer", "ServiceProcess", "create_topics", "module_name"]

"""Repository-wide pytest setup: the infrastructure fixtures of jmo_devstack (all lazy)."""

pytest_plugins = ["jmo_devstack.pytest_plugin"]

"""``python -m jmo_devstack``: the local stack's command line (what ``make up/down/status/reset`` run)."""

from __future__ import annotations

import sys

import os
from typing import Annotated

import typer
from rich.console import Console

from .install import InstallError, install_all
from .net import run_sync
from .paths import StackPaths
from .kafka import scram_options
from .secrets import kafka_password_variables, local_kafka_passwords, local_secrets
from .stack import Stack, StackError
from .topics import prepare_cluster

app = typer.Typer(
    help="Kafka, FerretDB and the five JMO services on 127.0.0.1, without Docker.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(width=None if sys.stdout.isatty() else 140)


def _stack() -> Stack:
    return Stack(console=console)


@app.command()
def up(
    services: Annotated[bool, typer.Option("--services/--infra-only", help="Also start the five services.")] = True,
) -> None:
    """Start Kafka and FerretDB (unless KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI name others), create the
    topics, start the services and wait for their /health. Running parts are kept."""
    try:
        _stack().up(with_services=services)
    except StackError as exc:
        console.print(f"[red bold]make up failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def down() -> None:
    """Stop what `up` started, by pid: services, then Kafka, then FerretDB."""
    _stack().down()


@app.command()
def status() -> None:
    """Show what runs, where, and where its log is."""
    console.print(_stack().status_table())


@app.command()
def reset() -> None:
    """`down`, then delete the stack's data (.local/state) and logs (.local/logs)."""
    _stack().reset()


@app.command()
def install() -> None:
    """Resolve the Kafka jars and build FerretDB into .local/ (skipped when up to date)."""
    try:
        install_all(StackPaths.discover(), say=lambda line: console.print(line, highlight=False, markup=False))
    except InstallError as exc:
        console.print(f"[red bold]install failed:[/] {exc}")
        raise typer.Exit(1) from None


@app.command("secrets")
def secrets_command() -> None:
    """Print the local stack's keys and Kafka passwords (JMO_KAFKA_PASSWORD_<PRINCIPAL>) as ``export
    NAME=value`` lines (generated on first use), e.g. for ``eval "$(.venv/bin/python -m jmo_devstack
    secrets)"`` before docker compose or the jmo CLI."""
    path = StackPaths.discover().state / "secrets.json"
    for name, value in local_secrets(path).items():
        typer.echo(f"export {name}={value}")
    variables = kafka_password_variables()
    for principal, password in local_kafka_passwords(path).items():
        typer.echo(f"export {variables[principal]}={password}")


@app.command("create-topics")
def create_topics_command(
    bootstrap: Annotated[str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")] = "127.0.0.1:9092",
    prefix: Annotated[str, typer.Option(envvar="JMO_TOPIC_PREFIX", help="Prefix of every topic name.")] = "",
    replication_factor: Annotated[int, typer.Option(envvar="JMO_TOPIC_REPLICATION_FACTOR")] = 1,
    admin_password: Annotated[str | None, typer.Option(envvar="JMO_KAFKA_PASSWORD_JMO_ADMIN", help="The Kafka admin's SCRAM password: also create every principal's ACLs.", show_default=False)] = None,
) -> None:
    """Create every topic of the system on an existing cluster, and with the admin's password the ACLs
    of every principal (used by docker-compose)."""
    from .acls import ADMIN

    options = scram_options(ADMIN, admin_password) if admin_password else None
    names = run_sync(prepare_cluster(bootstrap, prefix, client_options=options, replication_factor=replication_factor))
    console.print(f"{len(names)} topics present on {bootstrap}" + (" with the ACLs of every principal" if options else ""))


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()

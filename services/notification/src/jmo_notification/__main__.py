from jmo_runtime.run import run_service

from .entrypoint.app import NAME, build

run_service(NAME, build)

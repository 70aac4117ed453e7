from jmo_runtime.run import run_service

from .entrypoint.app import NAME, build
from .settings import BiometricSettings

run_service(NAME, build, settings_class=BiometricSettings)

"""Second Factor Server: checks the PIN or biometric and attests to it."""

import os

from authserver.config import ComponentConfig, ConfigError, read_setting
from authserver.services.runtime import Component, build_component
from authserver.sfs import flows

DEFAULT_MAX_ATTEMPTS = 5


def _max_attempts(environ: dict[str, str]) -> int:
    value = read_setting("NEXTAUTH_SFS_PIN_MAX_ATTEMPTS", environ)
    if value is None:
        return DEFAULT_MAX_ATTEMPTS
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise ConfigError("NEXTAUTH_SFS_PIN_MAX_ATTEMPTS: expected a whole number from 1 to 100")
    return int(value)


def build(config: ComponentConfig, *, environ: dict[str, str] | None = None) -> Component:
    environ = dict(os.environ if environ is None else environ)
    component = build_component(config, "Second Factor Server")
    service = flows.SecondFactorService(
        component.engine,
        component.identity_key,
        component.identity.key_hash.hex(),
        _max_attempts(environ),
    )
    flows.register(component.operations, service)
    return component

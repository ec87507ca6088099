"""Second Factor Server: checks the PIN or biometric and attests to it."""

import logging
import os
from datetime import timedelta

from authserver.config import ComponentConfig, ConfigError, read_setting
from authserver.purge import PeriodicPurge
from authserver.ratelimit import client_guard, describe, rule_setting
from authserver.services.runtime import Component, build_component
from authserver.sfs import flows
from authserver.sfs.purge import DEFAULT_UNFINISHED_SECONDS, purge_unfinished

log = logging.getLogger("nextauth.sfs")

DEFAULT_MAX_ATTEMPTS = 5


def _max_attempts(environ: dict[str, str]) -> int:
    value = read_setting("NEXTAUTH_SFS_PIN_MAX_ATTEMPTS", environ)
    if value is None:
        return DEFAULT_MAX_ATTEMPTS
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise ConfigError("NEXTAUTH_SFS_PIN_MAX_ATTEMPTS: expected a whole number from 1 to 100")
    return int(value)


def _unfinished_seconds(environ: dict[str, str]) -> int:
    name = "NEXTAUTH_SFS_UNFINISHED_REGISTRATION_SECONDS"
    value = read_setting(name, environ)
    if value is None:
        return DEFAULT_UNFINISHED_SECONDS
    if not value.isdigit() or not 60 <= int(value) <= 30 * 86400:
        raise ConfigError(f"{name}: expected a whole number of seconds from 60 to 2592000")
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
    # Each register.start of a new device key adds a row: limited per client address and for all together.
    per_client = rule_setting(environ, "NEXTAUTH_SFS_RATE_LIMIT_REGISTER", "register", "30/minute")
    overall = rule_setting(environ, "NEXTAUTH_SFS_RATE_LIMIT_REGISTER_ALL", "register_all", "600/minute")
    component.operations.guard("register.start", client_guard(component.limiter, per_client, overall))
    log.info("sfs rate limits: %s", describe([per_client, overall]))
    unfinished = timedelta(seconds=_unfinished_seconds(environ))
    component.listeners["purge"] = PeriodicPurge(
        "sfs", "unfinished registrations", lambda: purge_unfinished(component.engine, unfinished)
    )
    return component

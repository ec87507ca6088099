"""Second Factor Server: checks the PIN or biometric and attests to it."""

import logging
import os
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from authserver.audit import settings as audit_settings
from authserver.config import ComponentConfig, ConfigError, read_setting, whole_number_in_range
from authserver.purge import PeriodicPurge
from authserver.ratelimit import client_guard, describe, rule_setting
from authserver.services.common import register_hello
from authserver.services.runtime import Component, build_component
from authserver.sfs import flows
from authserver.sfs.purge import DEFAULT_UNFINISHED_SECONDS, purge_unfinished
from authserver.storage.repository import ensure_service_key

log = logging.getLogger("nextauth.sfs")

# The settings read here (authserver.config reads the rest); the typo check knows them from this list.
SETTINGS = (
    "NEXTAUTH_SFS_PIN_MAX_ATTEMPTS",
    "NEXTAUTH_SFS_ATTESTATION_KEY",
    "NEXTAUTH_SFS_RATE_LIMIT_REGISTER",
    "NEXTAUTH_SFS_RATE_LIMIT_REGISTER_ALL",
    "NEXTAUTH_SFS_UNFINISHED_REGISTRATION_SECONDS",
    "NEXTAUTH_SFS_PIN_CHANGE_SECONDS",
    *audit_settings.setting_names("sfs"),
)

DEFAULT_MAX_ATTEMPTS = 5
# The attestation key is kept beside the identity key, in its own slot of the service-key table.
ATTESTATION_SLOT = "attestation"


def _max_attempts(environ: dict[str, str]) -> int:
    return whole_number_in_range(
        "NEXTAUTH_SFS_PIN_MAX_ATTEMPTS",
        read_setting("NEXTAUTH_SFS_PIN_MAX_ATTEMPTS", environ),
        default=DEFAULT_MAX_ATTEMPTS,
        high=100,
    )


def _configured_attestation_key(environ: dict[str, str]) -> ed25519.Ed25519PrivateKey | None:
    value = read_setting("NEXTAUTH_SFS_ATTESTATION_KEY", environ)
    if value is None:
        return None
    try:
        key = serialization.load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError("NEXTAUTH_SFS_ATTESTATION_KEY: not an unencrypted PEM private key") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("NEXTAUTH_SFS_ATTESTATION_KEY: must be an Ed25519 key")
    return key


def trusted_entry(component: Component) -> str:
    """What an ns lists in NEXTAUTH_NS_TRUSTED_SFS_KEYS for this SFS: identity key, attestation key."""
    return f"{component.identity.public_raw.hex()}:{component.extras['attestation_public_key']}"


def _unfinished_seconds(environ: dict[str, str]) -> int:
    return whole_number_in_range(
        "NEXTAUTH_SFS_UNFINISHED_REGISTRATION_SECONDS",
        read_setting("NEXTAUTH_SFS_UNFINISHED_REGISTRATION_SECONDS", environ),
        default=DEFAULT_UNFINISHED_SECONDS,
        high=30 * 86400,
        low=60,
        unit="seconds",
    )


def _pin_change_seconds(environ: dict[str, str]) -> int:
    return whole_number_in_range(
        "NEXTAUTH_SFS_PIN_CHANGE_SECONDS",
        read_setting("NEXTAUTH_SFS_PIN_CHANGE_SECONDS", environ),
        default=flows.DEFAULT_PIN_CHANGE_SECONDS,
        high=600,
        unit="seconds",
    )


def build(config: ComponentConfig, *, environ: dict[str, str] | None = None) -> Component:
    environ = dict(os.environ if environ is None else environ)
    configured = _configured_attestation_key(environ)
    component = build_component(config, "Second Factor Server")
    identity_raw = component.identity.public_raw
    if configured is not None and configured.public_key().public_bytes_raw() == identity_raw:
        raise ConfigError(
            "NEXTAUTH_SFS_ATTESTATION_KEY: must differ from the SFS identity key (NEXTAUTH_SFS_IDENTITY_KEY)"
        )
    try:
        attestation_key = ensure_service_key(
            component.engine, "sfs", configured=configured, server_id=ATTESTATION_SLOT
        )
    except ValueError as exc:  # the configured key is already another service's key
        raise ConfigError(f"NEXTAUTH_SFS_ATTESTATION_KEY: {exc}") from exc
    public_hex = attestation_key.public_key().public_bytes_raw().hex()
    component.extras["attestation_public_key"] = public_hex
    service = flows.SecondFactorService(
        component.engine,
        attestation_key,
        component.identity.key_hash.hex(),
        _max_attempts(environ),
        _pin_change_seconds(environ),
        audit_settings.build_trail("sfs", component.engine, environ),
    )
    flows.register(component.operations, service)
    # hello shows the attestation key too: an operator reads it with `nextauth-app hello sfs`.
    register_hello(
        component.operations, "sfs", "Second Factor Server", extra={"attestation_public_key": public_hex}
    )
    log.info(
        "sfs attestation key %s; an ns trusts this sfs with NEXTAUTH_NS_TRUSTED_SFS_KEYS=%s",
        public_hex,
        trusted_entry(component),
    )
    # Each register.start of a new device key adds a row: limited per client address and for all together.
    per_client = rule_setting(environ, "NEXTAUTH_SFS_RATE_LIMIT_REGISTER", "register", "30/minute")
    overall = rule_setting(environ, "NEXTAUTH_SFS_RATE_LIMIT_REGISTER_ALL", "register_all", "600/minute")
    component.operations.guard("register.start", client_guard(component.limiter, per_client, overall))
    log.info("sfs rate limits: %s", describe([per_client, overall]))
    unfinished = timedelta(seconds=_unfinished_seconds(environ))
    component.listeners["purge"] = PeriodicPurge(
        "sfs", "unfinished registrations", lambda: purge_unfinished(component.engine, unfinished)
    )
    component.listeners["audit"] = service.audit
    component.listeners["audit-purge"] = audit_settings.retention_purge("sfs", service.audit, environ)
    return component

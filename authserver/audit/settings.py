"""The audit settings of a component: ``NEXTAUTH_<NS|SFS>_AUDIT_*``, each falling back to the shared
``NEXTAUTH_AUDIT_*`` like the database and log settings, so one line configures every component."""

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import Engine

from authserver.audit.sinks import SinkError, WebhookSink
from authserver.audit.trail import AuditTrail
from authserver.config import ConfigError, read_setting, whole_number_in_range
from authserver.purge import PeriodicPurge

FLAGS = (
    "AUDIT_RETENTION_DAYS",
    "AUDIT_WEBHOOK_URLS",
    "AUDIT_WEBHOOK_SECRETS",
    "AUDIT_WEBHOOK_ALLOW_HTTP",
    "AUDIT_WEBHOOK_QUEUE_SIZE",
)
DEFAULT_RETENTION_DAYS = 90
DEFAULT_QUEUE_SIZE = 10_000


def setting_names(component: str) -> tuple[str, ...]:
    """What the typo check knows: the component's names and the shared ones."""
    return tuple(f"NEXTAUTH_{component.upper()}_{flag}" for flag in FLAGS) + tuple(
        f"NEXTAUTH_{flag}" for flag in FLAGS
    )


def _setting(component: str, flag: str, environ: Mapping[str, str]) -> tuple[str, str | None]:
    own = f"NEXTAUTH_{component.upper()}_{flag}"
    value = read_setting(own, environ)
    if value is not None:
        return own, value
    return f"NEXTAUTH_{flag}", read_setting(f"NEXTAUTH_{flag}", environ)


def _whole_number(component: str, flag: str, environ: Mapping[str, str], default: int, high: int) -> int:
    name, value = _setting(component, flag, environ)
    return whole_number_in_range(name, value, default=default, high=high)


def retention(component: str, environ: Mapping[str, str]) -> timedelta:
    return timedelta(
        days=_whole_number(component, "AUDIT_RETENTION_DAYS", environ, DEFAULT_RETENTION_DAYS, 36500)
    )


def sinks(component: str, environ: Mapping[str, str]) -> list[WebhookSink]:
    urls_name, urls = _setting(component, "AUDIT_WEBHOOK_URLS", environ)
    secrets_name, secrets = _setting(component, "AUDIT_WEBHOOK_SECRETS", environ)
    allow_name, allow = _setting(component, "AUDIT_WEBHOOK_ALLOW_HTTP", environ)
    if (allow or "false").lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{allow_name}: expected true or false")
    allow_http = (allow or "false").lower() in ("true", "1", "yes")
    queue = _whole_number(component, "AUDIT_WEBHOOK_QUEUE_SIZE", environ, DEFAULT_QUEUE_SIZE, 1_000_000)
    url_list = [item.strip() for item in (urls or "").split(",") if item.strip()]
    # Secrets are separated by spaces or commas: neither appears in a generated secret.
    secret_list = (secrets or "").replace(",", " ").split()
    if not url_list:
        # No sink for this component: shared secrets (NEXTAUTH_AUDIT_WEBHOOK_SECRETS) are for the others.
        return []
    if len(secret_list) != len(url_list):
        raise ConfigError(
            f"{secrets_name}: give one secret per URL in {urls_name}, in the same order "
            f"({len(url_list)} URLs, {len(secret_list)} secrets)"
        )
    built = []
    for index, (url, secret) in enumerate(zip(url_list, secret_list, strict=True)):
        try:
            built.append(
                WebhookSink(
                    url,
                    secret.encode("utf-8"),
                    name=str(index),
                    component=component,
                    allow_http=allow_http,
                    max_queue=queue,
                )
            )
        except SinkError as exc:
            raise ConfigError(f"{urls_name} (sink {index}): {exc}") from exc
    return built


def build_trail(component: str, engine: Engine, environ: Mapping[str, str]) -> AuditTrail:
    return AuditTrail(engine, component, sinks=sinks(component, environ))


def retention_purge(component: str, trail: AuditTrail, environ: Mapping[str, str]) -> PeriodicPurge:
    keep = retention(component, environ)
    return PeriodicPurge(component, "audit events", lambda: trail.purge(keep))

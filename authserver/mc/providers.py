"""Which push providers the MC uses, from its configuration.

FCM needs the Firebase service account (its JSON, usually as ``NEXTAUTH_MC_FCM_SERVICE_ACCOUNT_FILE``);
APNs needs the .p8 token key with its key id, team id and the app's bundle id (topic). Without them a
provider falls back to the logging one: the embedded default, where apps still get every message by
pulling from their mailbox.

Web Push needs no third party's credentials, only the MC's own VAPID key: configured as
``NEXTAUTH_MC_WEBPUSH_VAPID_PRIVATE_KEY`` (PEM, or ``..._FILE``), or else made on first start and kept
in the data folder. So it is always a real provider.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from authserver.config import ConfigError, read_setting
from authserver.push.base import PushProvider
from authserver.push.logging_provider import LoggingProvider

if TYPE_CHECKING:
    from authserver.push.webpush import WebPushProvider

FLAGS = (
    "FCM_SERVICE_ACCOUNT", "FCM_BASE_URL", "APNS_KEY", "APNS_KEY_ID", "APNS_TEAM_ID", "APNS_TOPIC",
    "APNS_URL", "PUSH_CA_FILE", "WEBPUSH_VAPID_PRIVATE_KEY", "WEBPUSH_SUBJECT",
    "WEBPUSH_ALLOW_PRIVATE_ENDPOINTS",
)  # fmt: skip
SETTINGS = tuple(f"NEXTAUTH_MC_{flag}" for flag in FLAGS)


def _setting(environ: Mapping[str, str], flag: str) -> str | None:
    assert flag in FLAGS, f"declare {flag} in FLAGS, so it is not reported as a typo"
    return read_setting(f"NEXTAUTH_MC_{flag}", environ)


def providers_from_environment(
    environ: Mapping[str, str], data_dir: Path | None = None
) -> dict[str, PushProvider]:
    """The providers by name. Web Push is left out only when it has no VAPID key configured and no data
    folder to keep one in."""
    ca_file = _setting(environ, "PUSH_CA_FILE")
    providers: dict[str, PushProvider] = {"fcm": LoggingProvider("fcm"), "apns": LoggingProvider("apns")}

    account = _setting(environ, "FCM_SERVICE_ACCOUNT")
    if account is not None:
        from authserver.push.fcm import FcmProvider, ServiceAccount

        try:
            options: dict[str, Any] = {"ca_file": ca_file}
            if base := _setting(environ, "FCM_BASE_URL"):
                options["base_url"] = base
            providers["fcm"] = FcmProvider(ServiceAccount.from_json(account), **options)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"NEXTAUTH_MC_FCM_SERVICE_ACCOUNT: not a usable service account ({exc})"
            ) from exc

    key = _setting(environ, "APNS_KEY")
    if key is not None:
        from authserver.push.apns import PRODUCTION_URL, ApnsProvider

        missing = [
            flag for flag in ("APNS_KEY_ID", "APNS_TEAM_ID", "APNS_TOPIC") if not _setting(environ, flag)
        ]
        if missing:
            raise ConfigError(f"NEXTAUTH_MC_{missing[0]}: needed with NEXTAUTH_MC_APNS_KEY")
        try:
            providers["apns"] = ApnsProvider(
                key,
                _setting(environ, "APNS_KEY_ID") or "",
                _setting(environ, "APNS_TEAM_ID") or "",
                _setting(environ, "APNS_TOPIC") or "",
                base_url=_setting(environ, "APNS_URL") or PRODUCTION_URL,
                ca_file=ca_file,
            )
        except ValueError as exc:
            raise ConfigError("NEXTAUTH_MC_APNS_KEY: not a PEM (.p8) P-256 private key") from exc
    if data_dir is not None or _setting(environ, "WEBPUSH_VAPID_PRIVATE_KEY") is not None:
        providers["webpush"] = webpush_from_environment(environ, data_dir, ca_file)
    return providers


def webpush_from_environment(
    environ: Mapping[str, str], data_dir: Path | None, ca_file: str | None
) -> "WebPushProvider":
    from authserver.push.webpush import EndpointPolicy, Vapid, WebPushProvider, load_vapid_key, vapid_key_in

    pem = _setting(environ, "WEBPUSH_VAPID_PRIVATE_KEY")
    try:
        if pem is not None:
            key = load_vapid_key(pem)
        elif data_dir is not None:
            key = vapid_key_in(data_dir)
        else:
            raise ValueError("not set, and no data folder to keep a generated one in")
    except ValueError as exc:
        raise ConfigError(f"NEXTAUTH_MC_WEBPUSH_VAPID_PRIVATE_KEY: {exc}") from exc
    subject = _setting(environ, "WEBPUSH_SUBJECT")
    if subject is not None and not subject.startswith(("mailto:", "https://")):
        raise ConfigError("NEXTAUTH_MC_WEBPUSH_SUBJECT: expected a mailto: or https:// URI")
    allow = (_setting(environ, "WEBPUSH_ALLOW_PRIVATE_ENDPOINTS") or "false").lower()
    if allow not in ("true", "false"):
        raise ConfigError("NEXTAUTH_MC_WEBPUSH_ALLOW_PRIVATE_ENDPOINTS: expected true or false")
    return WebPushProvider(
        Vapid(key, subject), policy=EndpointPolicy(allow_private=allow == "true"), ca_file=ca_file
    )

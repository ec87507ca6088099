"""The SAML front-end's settings and collaborators, built once per Flask app at blueprint registration."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import current_app

from authserver.config import ConfigError, read_setting, seconds_in_range
from idp.context import IdpServices
from idp.keys import LoadedKey
from idp.logout_fanout import DEFAULT_TIMEOUT as DEFAULT_LOGOUT_TIMEOUT
from idp.saml import attributes, nameid
from idp.saml.registry import Registry, ServiceProvider
from idp.saml.xmlsecurity import XmlSecurity, for_key
from nextauth_core.digits import only_digits

EXTENSION = "nextauth_saml"
NAMEID_SECRET_SETTING = "NEXTAUTH_IDP_SAML_NAMEID_SECRET"  # noqa: S105 - the setting's name
PREFIX = "NEXTAUTH_IDP_SAML_"
# Each NEXTAUTH_IDP_SAML_<name> that ``load_settings`` reads (server.known_variables lists them).
SETTINGS = (
    "SCOPE", "AFFILIATION", "GROUP_AFFILIATIONS", "SIGN_METADATA", "METADATA_VALID_DAYS",
    "METADATA_CACHE_SECONDS", "METADATA_REFRESH_SECONDS", "ORGANIZATION_NAME", "ORGANIZATION_DISPLAY_NAME",
    "ORGANIZATION_URL", "TECHNICAL_CONTACT", "SUPPORT_CONTACT", "DISPLAY_NAME", "LOGO_URL", "LOGO_SIZE",
    "PRIVACY_URL", "LANG",
)  # fmt: skip
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,255}$")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
LOGOUT_TIMEOUT_SETTING = "NEXTAUTH_IDP_LOGOUT_TIMEOUT_SECONDS"

METADATA = "/saml/metadata"
SSO_REDIRECT = "/saml/sso/redirect"
SSO_POST = "/saml/sso/post"
SSO_CONTINUE = "/saml/sso/continue"
SLO_REDIRECT = "/saml/slo/redirect"
SLO_POST = "/saml/slo/post"
LOGOUT = "/saml/logout"
LOGOUT_FRAME = "/saml/logout/frame"
LOGOUT_STATUS = "/saml/logout/status"
LOGOUT_DONE = "/saml/logout/done"


@dataclass(frozen=True)
class Contact:
    kind: str  # technical, support (md:ContactPerson contactType)
    email: str


@dataclass(frozen=True)
class SamlSettings:
    """What federations expect to read about the IdP, and what eduPerson attributes are made of."""

    release: attributes.Release = attributes.DEFAULT_RELEASE
    sign_metadata: bool = True
    metadata_valid_seconds: int = 7 * 86400  # validUntil, from each time the metadata is built
    metadata_cache_seconds: int = 6 * 3600  # cacheDuration
    metadata_refresh_seconds: int = 6 * 3600  # SP metadata fetched from a URL, unless it says sooner
    organization_name: str | None = None
    organization_display_name: str | None = None
    organization_url: str | None = None
    contacts: tuple[Contact, ...] = ()
    display_name: str | None = None
    logo_url: str | None = None
    logo_size: tuple[int, int] = (80, 60)  # width, height in pixels
    privacy_url: str | None = None
    lang: str = "en"


def _https_url(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or any(c in value for c in " <>\"'"):
        raise ConfigError(f"{name}: expected an https:// URL")
    return value


def _affiliations(name: str, words: list[str]) -> tuple[str, ...]:
    for word in words:
        if word not in attributes.AFFILIATIONS:
            raise ConfigError(
                f"{name}: {word!r} is not an eduPerson affiliation ({', '.join(attributes.AFFILIATIONS)})"
            )
    return tuple(words)


def load_settings(environ: Mapping[str, str]) -> SamlSettings:
    def get(flag: str) -> str | None:
        assert flag in SETTINGS, f"declare {flag} in SETTINGS, so it is not reported as a typo"
        return read_setting(PREFIX + flag, environ)

    scope = get("SCOPE")
    if scope is not None:
        scope = scope.strip().lower()
        if not _DOMAIN.match(scope):
            raise ConfigError(f"{PREFIX}SCOPE: expected a domain name, e.g. example.org")
    defaults = _affiliations(
        PREFIX + "AFFILIATION", [w.strip() for w in (get("AFFILIATION") or "").split(",") if w.strip()]
    )
    by_group: dict[str, tuple[str, ...]] = {}
    for pair in (get("GROUP_AFFILIATIONS") or "").split(","):
        if not pair.strip():
            continue
        group, sep, affiliation = pair.partition("=")
        if not sep or not group.strip():
            raise ConfigError(
                f"{PREFIX}GROUP_AFFILIATIONS: expected group=affiliation pairs, e.g. "
                "staff=staff,students=student"
            )
        found = _affiliations(PREFIX + "GROUP_AFFILIATIONS", [affiliation.strip()])
        by_group[group.strip()] = by_group.get(group.strip(), ()) + found
    sign = (get("SIGN_METADATA") or "true").strip().lower()
    if sign not in ("true", "false"):
        raise ConfigError(f"{PREFIX}SIGN_METADATA: expected true or false")

    def seconds(flag: str, default: int, low: int, high: int) -> int:
        return int(
            seconds_in_range(
                PREFIX + flag, get(flag), default, low=low, high=high, whole=True,
                expected=f"whole seconds from {low} to {high}",
            )
        )  # fmt: skip

    valid_days = seconds("METADATA_VALID_DAYS", 7, 1, 365)
    cache = seconds("METADATA_CACHE_SECONDS", 6 * 3600, 60, 7 * 86400)
    if cache >= valid_days * 86400:
        raise ConfigError(f"{PREFIX}METADATA_CACHE_SECONDS: must be shorter than METADATA_VALID_DAYS")
    refresh = seconds("METADATA_REFRESH_SECONDS", 6 * 3600, 300, 7 * 86400)
    organization = get("ORGANIZATION_NAME")
    organization_url = _https_url(PREFIX + "ORGANIZATION_URL", get("ORGANIZATION_URL"))
    if organization is not None and organization_url is None:
        raise ConfigError(f"{PREFIX}ORGANIZATION_URL: required with ORGANIZATION_NAME (metadata needs both)")
    contacts = []
    for kind in ("technical", "support"):
        email = get(f"{kind.upper()}_CONTACT")
        if email is not None:
            email = email.strip().removeprefix("mailto:")
            if not _EMAIL.match(email):
                raise ConfigError(f"{PREFIX}{kind.upper()}_CONTACT: expected an e-mail address")
            contacts.append(Contact(kind, email))
    size_text = get("LOGO_SIZE") or "80x60"
    width, sep, height = size_text.lower().partition("x")
    if not (
        sep
        and only_digits(width)
        and only_digits(height)
        and 0 < int(width) <= 4096
        and 0 < int(height) <= 4096
    ):
        raise ConfigError(f"{PREFIX}LOGO_SIZE: expected WIDTHxHEIGHT in pixels, e.g. 80x60")
    lang = get("LANG") or "en"
    if not _LANG.match(lang):
        raise ConfigError(f"{PREFIX}LANG: expected a language tag, e.g. en or de")
    return SamlSettings(
        release=attributes.Release(scope=scope, default_affiliations=defaults, group_affiliations=by_group),
        sign_metadata=sign == "true",
        metadata_valid_seconds=valid_days * 86400,
        metadata_cache_seconds=cache,
        metadata_refresh_seconds=refresh,
        organization_name=organization,
        organization_display_name=get("ORGANIZATION_DISPLAY_NAME") or organization,
        organization_url=organization_url,
        contacts=tuple(contacts),
        display_name=get("DISPLAY_NAME"),
        logo_url=_https_url(PREFIX + "LOGO_URL", get("LOGO_URL")),
        logo_size=(int(width), int(height)),
        privacy_url=_https_url(PREFIX + "PRIVACY_URL", get("PRIVACY_URL")),
        lang=lang,
    )


def variables() -> set[str]:
    return {PREFIX + flag for flag in SETTINGS} | {NAMEID_SECRET_SETTING, LOGOUT_TIMEOUT_SETTING}


@dataclass
class SamlContext:
    services: IdpServices
    registry: Registry
    name_id_secret: bytes = field(repr=False)
    settings: SamlSettings = field(default_factory=SamlSettings)
    logout_timeout: float = DEFAULT_LOGOUT_TIMEOUT  # how long single logout waits for the applications

    @property
    def entity_id(self) -> str:
        """The IdP's entity id is where its metadata lives."""
        return self.services.url(METADATA)

    def url(self, path: str) -> str:
        return self.services.url(path)

    def key(self) -> LoadedKey:
        return self.services.keys.active("saml", "RS256")

    def security(self, sp: ServiceProvider | None = None) -> XmlSecurity:
        return for_key(self.key(), sp.metadata_xml if sp is not None else None)


def build(services: IdpServices, secret_key: bytes | str) -> SamlContext:
    configured = read_setting(NAMEID_SECRET_SETTING, os.environ)
    if configured is not None:
        if len(configured) < 32:
            raise ValueError(f"{NAMEID_SECRET_SETTING}: at least 32 characters of random text")
        secret = configured.encode()
    else:
        if len(secret_key) < 32:
            raise ValueError(f"SAML needs the IdP's secret key (32+ characters) or {NAMEID_SECRET_SETTING}")
        secret = nameid.derive_secret(secret_key.encode() if isinstance(secret_key, str) else secret_key)
    logout_timeout = seconds_in_range(
        LOGOUT_TIMEOUT_SETTING,
        read_setting(LOGOUT_TIMEOUT_SETTING, os.environ),
        DEFAULT_LOGOUT_TIMEOUT,
        low=1,
        high=60,
        expected="seconds from 1 to 60",
    )
    return SamlContext(
        services=services,
        registry=Registry(services.engine),
        name_id_secret=secret,
        settings=load_settings(os.environ),
        logout_timeout=logout_timeout,
    )


def saml() -> SamlContext:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]

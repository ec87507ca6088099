"""The SAML front-end's settings and collaborators, built once per Flask app at blueprint registration."""

import os
from dataclasses import dataclass, field

from flask import current_app

from authserver.config import read_setting, seconds_in_range
from idp.context import IdpServices
from idp.keys import LoadedKey
from idp.logout_fanout import DEFAULT_TIMEOUT as DEFAULT_LOGOUT_TIMEOUT
from idp.saml import nameid
from idp.saml.registry import Registry, ServiceProvider
from idp.saml.xmlsecurity import XmlSecurity, for_key

EXTENSION = "nextauth_saml"
NAMEID_SECRET_SETTING = "NEXTAUTH_IDP_SAML_NAMEID_SECRET"  # noqa: S105 - the setting's name
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


@dataclass
class SamlContext:
    services: IdpServices
    registry: Registry
    name_id_secret: bytes = field(repr=False)
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
        logout_timeout=logout_timeout,
    )


def saml() -> SamlContext:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]

"""The NameID an SP learns for a user.

- ``persistent``: the same value for a user at one SP every time, different at every other SP, and not the
  user id: base64url(HMAC-SHA256(secret, [SP entity id, user id])). The secret is
  ``NEXTAUTH_IDP_SAML_NAMEID_SECRET`` if set, else derived from the IdP's secret key; changing it changes
  every persistent NameID.
- ``transient``: random, for one session at one SP.
- ``email``: the user's e-mail address, only if the directory marks it verified.

An SP is registered with one of these (the first its metadata declares, unless the operator chose). A
request's ``NameIDPolicy`` may ask for another, and gets it if it tells the SP no more about the user than
the registered one: transient, then persistent (linkable across sessions at that SP), then email
(linkable everywhere). So every SP may ask for transient, and none gets the e-mail address unless the
operator registered it for email.
"""

import hashlib
import hmac
import json
import secrets

from idp.i18n import N_
from idp.saml.errors import SamlError
from idp.saml.names import NAMEID_FORMATS, NAMEID_UNSPECIFIED
from idp.sessions import SignedInUser
from nextauth_core.encoding import b64url

MAX_NAME_ID = 255  # idp_rp_logins.name_id, which single logout looks sessions up by
# The formats by what they disclose, least first.
DISCLOSURE = ("transient", "persistent", "email")
_KEYS = {uri: key for key, uri in NAMEID_FORMATS.items()}


def key_of(uri: str) -> str | None:
    """The operator's word for a format URI; None for a format the IdP does not issue."""
    return _KEYS.get(uri)


def choose(registered: str, requested: str | None) -> str | None:
    """The format to answer with: the registered one unless the request names another it may have;
    None if it names one it may not have (or one the IdP does not issue)."""
    if requested in (None, "", NAMEID_UNSPECIFIED):
        return registered
    key = key_of(requested)
    if key is None or DISCLOSURE.index(key) > DISCLOSURE.index(registered):
        return None
    return key


def has_email(user: SignedInUser) -> bool:
    return bool(user.email and user.email_verified and len(user.email) <= MAX_NAME_ID)


def derive_secret(secret_key: bytes) -> bytes:
    """A key of its own for NameIDs: nothing else keyed by the IdP's secret can be confused with it."""
    return hmac.new(secret_key, b"nextauth saml persistent nameid v1", hashlib.sha256).digest()


def persistent(secret: bytes, sp_entity_id: str, user_id: str) -> str:
    message = json.dumps([sp_entity_id, user_id], separators=(",", ":")).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return b64url(digest)


def transient() -> str:
    return "_" + secrets.token_urlsafe(24)


def value(format_key: str, user: SignedInUser, sp_entity_id: str, secret: bytes) -> str:
    if format_key == "persistent":
        return persistent(secret, sp_entity_id, user.sub)
    if format_key == "transient":
        return transient()
    if format_key == "email":
        if not user.email or not user.email_verified:
            raise SamlError(
                N_(
                    "This application identifies people by a verified e-mail address, and your account has "
                    "none. "
                    "Ask your administrator to add it (nextauth user set --email ... --email-verified)."
                ),
                status=403,
                detail=f"no verified e-mail for {user.sub}",
            )
        if len(user.email) > MAX_NAME_ID:
            raise SamlError(N_("Your e-mail address is too long for this application."), status=403)
        return user.email
    raise ValueError(f"unknown name id format {format_key!r}")

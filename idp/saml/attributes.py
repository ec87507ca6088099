"""The attributes the IdP can release, under their standard names.

Each is sent with its ``urn:oid`` name (NameFormat ``uri``, as SAML2int and most SPs expect) and its
FriendlyName. Which ones an SP gets is set per SP at registration; the SP's metadata (RequestedAttribute)
does not widen that list.

| key    | Name (urn:oid)                      | FriendlyName | value                                   |
|--------|-------------------------------------|--------------|-----------------------------------------|
| uid    | urn:oid:0.9.2342.19200300.100.1.1   | uid          | the user id ns logs in                  |
| name   | urn:oid:2.16.840.1.113730.3.1.241   | displayName  | the directory's name, if set            |
| email  | urn:oid:0.9.2342.19200300.100.1.3   | mail         | the e-mail address, only if verified    |
| groups | urn:oid:1.3.6.1.4.1.5923.1.5.1.1    | isMemberOf   | one value per group                     |
"""

from dataclasses import dataclass

from saml2 import saml

from idp.sessions import SignedInUser

NAME_FORMAT_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"


@dataclass(frozen=True)
class AttributeDefinition:
    key: str
    name: str
    friendly_name: str


CATALOGUE = {
    "uid": AttributeDefinition("uid", "urn:oid:0.9.2342.19200300.100.1.1", "uid"),
    "name": AttributeDefinition("name", "urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    "email": AttributeDefinition("email", "urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    "groups": AttributeDefinition("groups", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf"),
}
# Operators may use the friendly names too.
ALIASES = {"displayname": "name", "mail": "email", "ismemberof": "groups"}
DEFAULT = ("uid",)


def parse_list(text: str) -> tuple[str, ...]:
    """``uid,name,email,groups`` (or their friendly names) -> canonical keys, in catalogue order."""
    chosen = set()
    for word in text.split(","):
        key = word.strip().lower()
        if not key:
            continue
        key = ALIASES.get(key, key)
        if key not in CATALOGUE:
            raise ValueError(f"attribute {word.strip()!r}: expected some of {', '.join(CATALOGUE)}")
        chosen.add(key)
    return tuple(key for key in CATALOGUE if key in chosen)


def values(user: SignedInUser, key: str) -> list[str]:
    if key == "uid":
        return [user.sub]
    if key == "name":
        return [user.name] if user.name else []
    if key == "email":
        # An address nobody checked could be anyone's; SPs often link accounts by it.
        return [user.email] if user.email and user.email_verified else []
    if key == "groups":
        return list(user.groups)
    raise KeyError(key)


def statement(user: SignedInUser, keys: tuple[str, ...]) -> saml.AttributeStatement | None:
    """The AttributeStatement for these keys; attributes without values are left out."""
    attributes = []
    for key in keys:
        found = values(user, key)
        if not found:
            continue
        definition = CATALOGUE[key]
        attribute_values = []
        for value in found:
            attribute_value = saml.AttributeValue()
            attribute_value.set_text(value)  # also types it xs:string
            attribute_values.append(attribute_value)
        attributes.append(
            saml.Attribute(
                name=definition.name,
                name_format=NAME_FORMAT_URI,
                friendly_name=definition.friendly_name,
                attribute_value=attribute_values,
            )
        )
    return saml.AttributeStatement(attribute=attributes) if attributes else None

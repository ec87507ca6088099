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
| eppn   | urn:oid:1.3.6.1.4.1.5923.1.1.1.6    | eduPersonPrincipalName | user id@scope                 |
| affiliation | urn:oid:1.3.6.1.4.1.5923.1.1.1.1 | eduPersonAffiliation | from groups or the default   |
| scoped_affiliation | urn:oid:1.3.6.1.4.1.5923.1.1.1.9 | eduPersonScopedAffiliation | affiliation@scope |

The eduPerson ones need the IdP's scope (``NEXTAUTH_IDP_SAML_SCOPE``, the domain the IdP speaks for); without
it they are left out. An SP registered with ``--name-format basic`` gets the FriendlyName as the Name
(NameFormat ``basic``) for SPs that match attributes by such names.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from saml2 import saml

from idp.sessions import SignedInUser

NAME_FORMAT_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
NAME_FORMAT_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
# eduPerson's controlled vocabulary for eduPersonAffiliation.
AFFILIATIONS = (
    "faculty", "student", "staff", "alum", "member", "affiliate", "employee", "library-walk-in",
)  # fmt: skip


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
    "eppn": AttributeDefinition("eppn", "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", "eduPersonPrincipalName"),
    "affiliation": AttributeDefinition(
        "affiliation", "urn:oid:1.3.6.1.4.1.5923.1.1.1.1", "eduPersonAffiliation"
    ),
    "scoped_affiliation": AttributeDefinition(
        "scoped_affiliation", "urn:oid:1.3.6.1.4.1.5923.1.1.1.9", "eduPersonScopedAffiliation"
    ),
}
# Operators may use the friendly names too.
ALIASES = {
    "displayname": "name",
    "mail": "email",
    "ismemberof": "groups",
    "edupersonprincipalname": "eppn",
    "edupersonaffiliation": "affiliation",
    "edupersonscopedaffiliation": "scoped_affiliation",
}


@dataclass(frozen=True)
class Release:
    """What the eduPerson attributes are made of: the IdP's scope and how groups map to affiliations."""

    scope: str | None = None
    default_affiliations: tuple[str, ...] = ()  # everyone's, e.g. ("member",)
    group_affiliations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    name_format: str = "uri"  # uri or basic

    def affiliations(self, groups: tuple[str, ...]) -> list[str]:
        found = list(self.default_affiliations)
        for group in groups:
            found += self.group_affiliations.get(group, ())
        return list(dict.fromkeys(found))  # once each, in order


DEFAULT_RELEASE = Release()
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


def values(user: SignedInUser, key: str, release: Release = DEFAULT_RELEASE) -> list[str]:
    if key == "uid":
        return [user.sub]
    if key == "name":
        return [user.name] if user.name else []
    if key == "email":
        # An address nobody checked could be anyone's; SPs often link accounts by it.
        return [user.email] if user.email and user.email_verified else []
    if key == "groups":
        return list(user.groups)
    if key == "eppn":
        return [eppn] if (eppn := principal_name(user.sub, release.scope)) else []
    if key == "affiliation":
        return release.affiliations(user.groups)
    if key == "scoped_affiliation":
        if not release.scope:
            return []
        return [f"{affiliation}@{release.scope}" for affiliation in release.affiliations(user.groups)]
    raise KeyError(key)


def principal_name(user_id: str, scope: str | None) -> str | None:
    """eduPersonPrincipalName: ``user@scope``. A user id that already names a domain keeps it only if it is
    the scope: SPs check the part after the @ against the scope in the IdP's metadata."""
    if not scope or not user_id:
        return None
    if "@" in user_id:
        return user_id if user_id.rsplit("@", 1)[1].lower() == scope.lower() else None
    return f"{user_id}@{scope}"


def statement(
    user: SignedInUser, keys: tuple[str, ...], release: Release = DEFAULT_RELEASE
) -> saml.AttributeStatement | None:
    """The AttributeStatement for these keys; attributes without values are left out."""
    basic = release.name_format == "basic"
    attributes = []
    for key in keys:
        found = values(user, key, release)
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
                name=definition.friendly_name if basic else definition.name,
                name_format=NAME_FORMAT_BASIC if basic else NAME_FORMAT_URI,
                friendly_name=definition.friendly_name,
                attribute_value=attribute_values,
            )
        )
    return saml.AttributeStatement(attribute=attributes) if attributes else None

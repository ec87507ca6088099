"""How a nextAuth login is described to SAML SPs (AuthnContextClassRef), and whether it meets what an SP
asked for in a RequestedAuthnContext.

A login is always the possession of a key on the user's phone; with the PIN or biometric the app checked
it is two factors:

| session (``acr`` / ``amr``)                          | AuthnContextClassRef           |
|------------------------------------------------------|--------------------------------|
| ``urn:nextauth:acr:mfa`` (``swk`` + ``pin``/``bio``) | ...:ac:classes:MobileTwoFactorContract |
| ``urn:nextauth:acr:possession`` (``swk``)            | ...:ac:classes:MobileOneFactorContract |

For the comparisons ``minimum``, ``better`` and ``maximum`` the classes are ranked: passwords (and
``unspecified``) below one-factor mobile below two-factor mobile. Classes outside that ranking only match
``exact``.
"""

from dataclasses import dataclass

from idp.sessions import ACR_MFA, SignedInUser

CLASSES = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
MOBILE_TWO_FACTOR = CLASSES + "MobileTwoFactorContract"
MOBILE_ONE_FACTOR = CLASSES + "MobileOneFactorContract"

RANK = {
    CLASSES + "unspecified": 1,
    CLASSES + "InternetProtocol": 1,
    CLASSES + "InternetProtocolPassword": 1,
    CLASSES + "Password": 1,
    CLASSES + "PasswordProtectedTransport": 1,
    CLASSES + "MobileOneFactorUnregistered": 2,
    MOBILE_ONE_FACTOR: 2,
    CLASSES + "MobileTwoFactorUnregistered": 3,
    MOBILE_TWO_FACTOR: 3,
}
COMPARISONS = ("exact", "minimum", "better", "maximum")


@dataclass(frozen=True)
class Requested:
    comparison: str
    class_refs: tuple[str, ...]


def class_ref(user: SignedInUser) -> str:
    return MOBILE_TWO_FACTOR if user.acr == ACR_MFA else MOBILE_ONE_FACTOR


def satisfies(ours: str, requested: Requested | None) -> bool:
    if requested is None or not requested.class_refs:
        return True
    if requested.comparison == "exact":
        return ours in requested.class_refs
    rank = RANK[ours]
    ranks = [RANK[ref] for ref in requested.class_refs if ref in RANK]
    if requested.comparison == "minimum":
        return any(rank >= other for other in ranks)
    if requested.comparison == "better":
        return any(rank > other for other in ranks)
    if requested.comparison == "maximum":
        return any(rank <= other for other in ranks)
    return False

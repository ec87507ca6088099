"""What the login page and the phone call a SAML SP: its metadata's display name."""

import pytest

from idp.saml.spmetadata import parse


def metadata(extensions: str = "", organization: str = "") -> str:
    return f"""<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
        xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui" entityID="https://sp.example.org/shibboleth">
      <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
        {extensions}
        <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
            Location="https://sp.example.org/acs" index="0"/>
      </md:SPSSODescriptor>
      {organization}
    </md:EntityDescriptor>"""


UIINFO = """<md:Extensions><mdui:UIInfo>
  <mdui:DisplayName xml:lang="de">Bibliothek</mdui:DisplayName>
  <mdui:DisplayName xml:lang="en">  University
     Library </mdui:DisplayName>
</mdui:UIInfo></md:Extensions>"""
ORGANIZATION = """<md:Organization>
  <md:OrganizationName xml:lang="en">ACME Corp</md:OrganizationName>
  <md:OrganizationDisplayName xml:lang="en">ACME</md:OrganizationDisplayName>
  <md:OrganizationURL xml:lang="en">https://acme.example</md:OrganizationURL>
</md:Organization>"""


@pytest.mark.parametrize(
    ("extensions", "organization", "expected"),
    [
        (UIINFO, ORGANIZATION, "University Library"),  # UIInfo first, English first, spaces folded
        ("", ORGANIZATION, "ACME"),
        ("", "", None),
        (
            "<md:Extensions><mdui:UIInfo><mdui:DisplayName>"
            + "x" * 300
            + "</mdui:DisplayName></mdui:UIInfo></md:Extensions>",
            "",
            "x" * 100,
        ),
        (
            "<md:Extensions><mdui:UIInfo><mdui:DisplayName>\u202eevil</mdui:DisplayName></mdui:UIInfo></md:Extensions>",
            ORGANIZATION,
            "ACME",
        ),
    ],
)
def test_display_name(extensions: str, organization: str, expected: str | None) -> None:
    assert parse(metadata(extensions, organization)).display_name == expected

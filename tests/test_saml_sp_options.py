"""Per-SP SAML options: each changes the Response the IdP emits (read with lxml), python3-saml (not ours)
accepts logins under the non-default ones, and what cannot work is refused with a clear error.

No listeners: the IdP's SSO answer is built directly (the same ``sso.answer`` the endpoint calls) and handed
to the python3-saml SP as its AssertionConsumerService would receive it.
"""

import argparse
import base64
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from idp.saml import attributes, commands, sso, xmlenc
from idp.saml.config import SamlContext, SamlSettings
from idp.saml.registry import Registry
from idp.saml.spoptions import SpOptions, encryption_method
from idp.sessions import SignedInUser
from tests.fixtures.idp_offline import offline_idp_services
from tests.saml_sp import ServiceProvider

ISSUER = "http://idp.example.test"
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}
EPPN_OID = "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"
SCOPED_AFFILIATION_OID = "urn:oid:1.3.6.1.4.1.5923.1.1.1.9"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"


class FlexibleSp(ServiceProvider):
    """The python3-saml SP, wanting only what the options under test give it."""

    want_messages_signed: bool = True
    want_assertions_signed: bool = True
    encryption_methods: tuple[str, ...] = ()

    @property
    def settings(self) -> OneLogin_Saml2_Settings:
        settings = super().settings
        security = settings.get_security_data()
        security["wantMessagesSigned"] = self.want_messages_signed
        security["wantAssertionsSigned"] = self.want_assertions_signed
        return settings

    def metadata(self) -> str:
        xml = super().metadata()
        if not self.want_assertions_signed:
            xml = xml.replace('WantAssertionsSigned="true"', 'WantAssertionsSigned="false"')
        methods = "".join(f'<md:EncryptionMethod Algorithm="{uri}"/>' for uri in self.encryption_methods)
        if methods:
            xml = re.sub(
                r'(<md:KeyDescriptor use="encryption">.*?</ds:KeyInfo>)', rf"\1{methods}", xml, flags=re.S
            )
        return xml


@pytest.fixture
def saml(tmp_path: Path) -> Iterator[SamlContext]:
    services = offline_idp_services(tmp_path / "idp.db", ISSUER)
    release = attributes.Release(
        scope="example.org", default_affiliations=("member",), group_affiliations={"staff": ("staff",)}
    )
    yield SamlContext(services, Registry(services.engine), b"n" * 32, SamlSettings(release=release))
    services.engine.dispose()


def idp_for(saml: SamlContext) -> dict[str, Any]:
    return {
        "entityId": saml.entity_id,
        "singleSignOnService": {
            "url": "https://idp.example.test/saml/sso/redirect",
            "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
        },
        "x509cert": OneLogin_Saml2_Utils.format_cert(saml.key().certificate or "", heads=False),
    }


def user() -> SignedInUser:
    now = int(time.time())
    return SignedInUser(
        sid="sid-1",
        sub="sam",
        name="Sam Example",
        email="sam@example.org",
        email_verified=True,
        groups=("staff", "admins"),
        amr=("qr",),
        acr="",
        method="qr",
        auth_time=now,
        expires_at=now + 3600,
    )


def login(saml: SamlContext, sp: ServiceProvider) -> tuple[str, Any]:
    """The IdP's Response (XML) to a login at ``sp``, and python3-saml's verdict on it."""
    _url, request_id = sp.login_url()
    pending = sso.PendingLogin(
        sp=sp.entity_id or "",
        request_id=request_id,
        acs=f"https://{sp.host}{sp.acs_path}",
        relay_state=None,
        force_authn=False,
        is_passive=False,
        name_id_format=None,
        comparison=None,
        class_refs=(),
        received_at=time.time(),
    )
    xml = sso.answer(saml, pending, user())
    auth = sp.consume({"SAMLResponse": base64.b64encode(xml.encode()).decode()}, request_id)
    return xml, auth


def accepted(auth: Any) -> None:
    assert auth.get_errors() == [], auth.get_last_error_reason()
    assert auth.is_authenticated()


def tree(xml: str) -> Any:
    return etree.fromstring(xml.encode())


def test_defaults_sign_both_with_rsa_sha256_for_five_minutes(saml: SamlContext) -> None:
    sp = FlexibleSp("opt0.example", idp_for(saml))
    saml.registry.add(sp.metadata())
    xml, auth = login(saml, sp)
    accepted(auth)
    root = tree(xml)
    methods = root.xpath("//ds:SignatureMethod/@Algorithm", namespaces=NS)
    assert methods == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] * 2
    conditions = root.find(".//saml:Conditions", NS)
    issued = datetime.fromisoformat(root.get("IssueInstant"))
    assert (datetime.fromisoformat(conditions.get("NotOnOrAfter")) - issued).total_seconds() == 300


def test_rsa_sha512_signs_response_and_assertion_and_python3_saml_accepts(saml: SamlContext) -> None:
    sp = FlexibleSp("opt1.example", idp_for(saml))
    saml.registry.add(sp.metadata(), options=SpOptions(signature_algorithm="rsa-sha512"))
    xml, auth = login(saml, sp)
    accepted(auth)
    root = tree(xml)
    assert root.xpath("//ds:SignatureMethod/@Algorithm", namespaces=NS) == [RSA_SHA512] * 2
    assert root.xpath("//ds:DigestMethod/@Algorithm", namespaces=NS) == [SHA512] * 2


def test_sign_assertion_only(saml: SamlContext) -> None:
    sp = FlexibleSp("opt2.example", idp_for(saml))
    sp.want_messages_signed = False
    saml.registry.add(sp.metadata(), options=SpOptions(sign="assertion"))
    xml, auth = login(saml, sp)
    accepted(auth)
    root = tree(xml)
    assert root.find("ds:Signature", NS) is None
    assert root.find("saml:Assertion/ds:Signature", NS) is not None


def test_sign_response_only(saml: SamlContext) -> None:
    sp = FlexibleSp("opt3.example", idp_for(saml))
    sp.want_assertions_signed = False
    saml.registry.add(sp.metadata(), options=SpOptions(sign="response"))
    xml, auth = login(saml, sp)
    accepted(auth)
    root = tree(xml)
    assert root.find("ds:Signature", NS) is not None
    assert root.find("saml:Assertion/ds:Signature", NS) is None


def test_response_only_is_refused_when_the_sp_wants_signed_assertions(saml: SamlContext) -> None:
    sp = FlexibleSp("opt4.example", idp_for(saml))  # its metadata says WantAssertionsSigned="true"
    with pytest.raises(ValueError, match="WantAssertionsSigned"):
        saml.registry.add(sp.metadata(), options=SpOptions(sign="response"))
    saml.registry.add(sp.metadata())
    with pytest.raises(ValueError, match="WantAssertionsSigned"):
        saml.registry.change(sp.entity_id or "", sign="response")


def test_assertion_lifetime(saml: SamlContext) -> None:
    sp = FlexibleSp("opt5.example", idp_for(saml))
    saml.registry.add(sp.metadata())
    saml.registry.change(sp.entity_id or "", assertion_lifetime=120)
    xml, auth = login(saml, sp)
    accepted(auth)
    root = tree(xml)
    conditions = root.find(".//saml:Conditions", NS)
    confirmation = root.find(".//saml:SubjectConfirmationData", NS)
    issued = datetime.fromisoformat(root.get("IssueInstant"))
    for element in (conditions, confirmation):
        assert (datetime.fromisoformat(element.get("NotOnOrAfter")) - issued).total_seconds() == 120


def test_eduperson_attributes_with_uri_names(saml: SamlContext) -> None:
    sp = FlexibleSp("opt6.example", idp_for(saml))
    saml.registry.add(sp.metadata(), released=attributes.parse_list("eppn,eduPersonScopedAffiliation,uid"))
    xml, auth = login(saml, sp)
    accepted(auth)
    assert auth.get_attribute(EPPN_OID) == ["sam@example.org"]
    assert auth.get_attribute(SCOPED_AFFILIATION_OID) == ["member@example.org", "staff@example.org"]
    formats = set(tree(xml).xpath("//saml:Attribute/@NameFormat", namespaces=NS))
    assert formats == {attributes.NAME_FORMAT_URI}


def test_basic_name_format(saml: SamlContext) -> None:
    sp = FlexibleSp("opt7.example", idp_for(saml))
    saml.registry.add(
        sp.metadata(), released=("eppn", "email", "affiliation"), options=SpOptions(name_format="basic")
    )
    xml, auth = login(saml, sp)
    accepted(auth)
    assert auth.get_attribute("eduPersonPrincipalName") == ["sam@example.org"]
    assert auth.get_attribute("mail") == ["sam@example.org"]
    assert auth.get_attribute("eduPersonAffiliation") == ["member", "staff"]
    assert auth.get_attribute(EPPN_OID) is None
    assert set(tree(xml).xpath("//saml:Attribute/@NameFormat", namespaces=NS)) == {
        attributes.NAME_FORMAT_BASIC
    }


def test_encryption_is_aes_gcm_by_default_and_python3_saml_decrypts(saml: SamlContext) -> None:
    sp = FlexibleSp("opt8.example", idp_for(saml), encrypt=True)
    saml.registry.add(sp.metadata(), encrypt=True)
    xml, auth = login(saml, sp)
    accepted(auth)
    methods = tree(xml).xpath("//xenc:EncryptedData/xenc:EncryptionMethod/@Algorithm", namespaces=NS)
    assert methods == [xmlenc.AES256_GCM]
    assert tree(xml).xpath("//xenc:EncryptedKey/xenc:EncryptionMethod/@Algorithm", namespaces=NS) == [
        xmlenc.RSA_OAEP_MGF1P
    ]


def test_cbc_only_when_the_sp_can_do_nothing_else(saml: SamlContext) -> None:
    sp = FlexibleSp("opt9.example", idp_for(saml), encrypt=True)
    sp.encryption_methods = (xmlenc.AES128_CBC, xmlenc.RSA_OAEP_MGF1P)
    saml.registry.add(sp.metadata(), encrypt=True, options=SpOptions(signature_algorithm="rsa-sha512"))
    xml, auth = login(saml, sp)
    accepted(auth)
    methods = tree(xml).xpath("//xenc:EncryptedData/xenc:EncryptionMethod/@Algorithm", namespaces=NS)
    assert methods == [xmlenc.AES128_CBC]
    assert auth.get_friendlyname_attributes() == {"uid": ["sam"]}


def test_gcm_is_preferred_when_the_sp_lists_both() -> None:
    sp = FlexibleSp("opt10.example", {}, encrypt=True)
    sp.encryption_methods = (xmlenc.AES256_CBC, xmlenc.AES128_GCM)
    xml = FakeMetadata.with_methods(sp.encryption_methods)
    assert encryption_method(xml) == xmlenc.AES128_GCM
    assert encryption_method(FakeMetadata.with_methods(())) == xmlenc.AES256_GCM


class FakeMetadata:
    @staticmethod
    def with_methods(methods: tuple[str, ...]) -> str:
        listed = "".join(f'<md:EncryptionMethod Algorithm="{uri}"/>' for uri in methods)
        return (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://x/m">'
            '<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            f'<md:KeyDescriptor use="encryption">{listed}</md:KeyDescriptor>'
            "</md:SPSSODescriptor></md:EntityDescriptor>"
        )


def test_encryption_methods_the_idp_cannot_do_are_refused(saml: SamlContext) -> None:
    with pytest.raises(ValueError, match="only encryption methods the IdP does not offer"):
        encryption_method(FakeMetadata.with_methods(("http://www.w3.org/2001/04/xmlenc#tripledes-cbc",)))
    with pytest.raises(ValueError, match="rsa-1_5"):
        encryption_method(FakeMetadata.with_methods((xmlenc.AES256_GCM, xmlenc.XENC + "rsa-1_5")))
    sp = FlexibleSp("opt11.example", idp_for(saml), encrypt=True)
    sp.encryption_methods = ("http://www.w3.org/2001/04/xmlenc#tripledes-cbc",)
    with pytest.raises(ValueError, match="does not offer"):
        saml.registry.add(sp.metadata(), encrypt=True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signature_algorithm": "rsa-sha1"}, "expected one of rsa-sha256, rsa-sha384, rsa-sha512"),
        ({"signature_algorithm": "hmac-sha256"}, "signature algorithm 'hmac-sha256'"),
        ({"sign": "neither"}, "sign 'neither'"),
        ({"assertion_lifetime": 5}, "60 to 3600 seconds"),
        ({"assertion_lifetime": 86400}, "60 to 3600 seconds"),
        ({"name_format": "unspecified"}, "name format 'unspecified'"),
    ],
)
def test_unknown_options_are_refused_with_a_clear_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SpOptions().changed(**changes)


def test_options_survive_storage_and_old_rows_get_defaults(saml: SamlContext) -> None:
    sp = FlexibleSp("opt12.example", idp_for(saml))
    saml.registry.add(
        sp.metadata(), options=SpOptions(signature_algorithm="rsa-sha384", assertion_lifetime=90)
    )
    found = saml.registry.get(sp.entity_id or "")
    assert found is not None
    assert found.options == SpOptions(signature_algorithm="rsa-sha384", assertion_lifetime=90)
    assert found.summary()["signature_algorithm"] == "rsa-sha384"
    with saml.services.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE saml_service_providers SET options = NULL")
    again = saml.registry.get(sp.entity_id or "")
    assert again is not None and again.options == SpOptions()


def test_eppn_needs_the_scope_and_keeps_no_foreign_domain() -> None:
    assert attributes.principal_name("sam", "example.org") == "sam@example.org"
    assert attributes.principal_name("sam@example.org", "example.org") == "sam@example.org"
    assert attributes.principal_name("sam@other.example", "example.org") is None
    assert attributes.principal_name("sam", None) is None


def cli(saml: SamlContext, *words: str) -> Any:
    parser = argparse.ArgumentParser()
    commands.arguments(parser)
    return commands.run(parser.parse_args(list(words)), saml.services.engine)


def test_saml_sp_add_and_set_take_the_options(saml: SamlContext, tmp_path: Path) -> None:
    sp = FlexibleSp("opt13.example", idp_for(saml), encrypt=True)
    (tmp_path / "sp.xml").write_text(sp.metadata())
    added = cli(
        saml,
        "add",
        *("--metadata", str(tmp_path / "sp.xml"), "--signature-algorithm", "rsa-sha384"),
        *("--assertion-lifetime", "600", "--name-format", "basic", "--attributes", "eppn,mail"),
    )
    assert (added["signature_algorithm"], added["assertion_lifetime"], added["name_format"]) == (
        "rsa-sha384",
        600,
        "basic",
    )
    changed = cli(saml, "set", sp.entity_id or "", "--signature-algorithm", "rsa-sha512", "--encrypt")
    assert changed["signature_algorithm"] == "rsa-sha512" and changed["encrypt_assertions"] is True
    assert changed["assertion_lifetime"] == 600 and changed["attributes"] == ["email", "eppn"]
    with pytest.raises(ValueError, match="signature algorithm 'rsa-sha1'"):
        cli(saml, "set", sp.entity_id or "", "--signature-algorithm", "rsa-sha1")
    with pytest.raises(ValueError, match="no SP"):
        cli(saml, "set", "https://unknown.example/metadata", "--sign", "both")
    with pytest.raises(ValueError, match="go with --metadata-url"):
        cli(saml, "add", "--metadata", str(tmp_path / "sp.xml"), "--insecure-unsigned")


def test_error_responses_are_signed_with_the_sps_algorithm(saml: SamlContext) -> None:
    sp = FlexibleSp("opt14.example", idp_for(saml))
    sp.want_messages_signed = False
    saml.registry.add(sp.metadata(), options=SpOptions(signature_algorithm="rsa-sha512", sign="assertion"))
    _url, request_id = sp.login_url()
    pending = sso.PendingLogin(
        sp=sp.entity_id or "",
        request_id=request_id,
        acs=f"https://{sp.host}{sp.acs_path}",
        relay_state=None,
        force_authn=False,
        is_passive=True,
        name_id_format=None,
        comparison=None,
        class_refs=(),
        received_at=time.time(),
    )
    root = tree(sso.no_passive(saml, pending))
    assert root.find("ds:Signature", NS) is not None  # an error carries no assertion: the response is signed
    assert root.xpath("//ds:SignatureMethod/@Algorithm", namespaces=NS) == [RSA_SHA512]

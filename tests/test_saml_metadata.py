"""Metadata a federation accepts, and SP metadata fetched from a URL.

The IdP's metadata is validated against the SAML metadata and mdui schemas pysaml2 ships, read by pysaml2's
and python3-saml's parsers, and its signature checked by xmlsec1. SP metadata is served by a local HTTP
server, signed with xmlsec1 from a pysaml2 signature template; tampered, wrongly signed, expired and
oversized copies are refused, and a refresh that fails keeps the old copy.
"""

import argparse
import base64
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

import gevent
import pytest
import saml2.data.schemas
import xmlschema
from lxml import etree
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from saml2 import md
from saml2.mdstore import MetaDataExtern, MetadataStore
from saml2.sigver import pre_signature_part

from authserver.config import ConfigError
from idp import housekeeping
from idp.saml import commands, idpmetadata, metadata_fetch, spmetadata
from idp.saml.config import Contact, SamlContext, SamlSettings, load_settings
from idp.saml.registry import Registry
from idp.saml.xmlsecurity import XMLSEC_BINARY, certificate_body
from tests.fixtures.flows import PIN, enrol
from tests.fixtures.idp_browser import Browser, idp_cli
from tests.fixtures.system import run_app, start_system, stop_system
from tests.saml_sp import ServiceProvider, key_and_certificate, post_form
from tests.test_saml_sp_options import FlexibleSp, idp_for, saml  # noqa: F401 - the fixture

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS = {
    "md": MD,
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "mdui": "urn:oasis:names:tc:SAML:metadata:ui",
    "shibmd": "urn:mace:shibboleth:metadata:1.0",
}
SCHEMAS = files(saml2.data.schemas)


def metadata_schema() -> xmlschema.XMLSchema:
    locations = {
        "http://www.w3.org/XML/1998/namespace": str(SCHEMAS / "xml.xsd"),
        "http://www.w3.org/2000/09/xmldsig#": str(SCHEMAS / "xmldsig-core-schema.xsd"),
        "http://www.w3.org/2001/04/xmlenc#": str(SCHEMAS / "xenc-schema.xsd"),
        "urn:oasis:names:tc:SAML:2.0:assertion": str(SCHEMAS / "saml-schema-assertion-2.0.xsd"),
        MD: str(SCHEMAS / "saml-schema-metadata-2.0.xsd"),
        NS["mdui"]: str(SCHEMAS / "sstc-saml-metadata-ui-v1.0.xsd"),
    }
    return xmlschema.XMLSchema(
        [str(SCHEMAS / "saml-schema-metadata-2.0.xsd"), str(SCHEMAS / "sstc-saml-metadata-ui-v1.0.xsd")],
        locations=locations,
        base_url=str(SCHEMAS),
        allow="sandbox",
    )


FEDERATION = {
    "NEXTAUTH_IDP_SAML_SCOPE": "Example.org",
    "NEXTAUTH_IDP_SAML_AFFILIATION": "member",
    "NEXTAUTH_IDP_SAML_GROUP_AFFILIATIONS": "staff=staff,staff=employee,students=student",
    "NEXTAUTH_IDP_SAML_ORGANIZATION_NAME": "Example University",
    "NEXTAUTH_IDP_SAML_ORGANIZATION_URL": "https://www.example.org/",
    "NEXTAUTH_IDP_SAML_TECHNICAL_CONTACT": "it@example.org",
    "NEXTAUTH_IDP_SAML_SUPPORT_CONTACT": "mailto:help@example.org",
    "NEXTAUTH_IDP_SAML_DISPLAY_NAME": "Example University Login",
    "NEXTAUTH_IDP_SAML_LOGO_URL": "https://www.example.org/logo.png",
    "NEXTAUTH_IDP_SAML_LOGO_SIZE": "100x50",
    "NEXTAUTH_IDP_SAML_PRIVACY_URL": "https://www.example.org/privacy",
    "NEXTAUTH_IDP_SAML_METADATA_VALID_DAYS": "10",
    "NEXTAUTH_IDP_SAML_METADATA_CACHE_SECONDS": "3600",
}


def test_settings_are_read() -> None:
    settings = load_settings(FEDERATION)
    assert settings.release.scope == "example.org"
    assert settings.release.affiliations(("staff", "other")) == ["member", "staff", "employee"]
    assert settings.contacts == (
        Contact("technical", "it@example.org"),
        Contact("support", "help@example.org"),
    )
    assert settings.organization_display_name == "Example University"
    assert settings.logo_size == (100, 50)
    assert settings.metadata_valid_seconds == 10 * 86400 and settings.metadata_cache_seconds == 3600
    assert load_settings({}) == SamlSettings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NEXTAUTH_IDP_SAML_SCOPE", "not a domain", "expected a domain name"),
        ("NEXTAUTH_IDP_SAML_AFFILIATION", "member,boss", "'boss' is not an eduPerson affiliation"),
        ("NEXTAUTH_IDP_SAML_GROUP_AFFILIATIONS", "staff", "group=affiliation pairs"),
        ("NEXTAUTH_IDP_SAML_ORGANIZATION_URL", "http://www.example.org/", "https:// URL"),
        ("NEXTAUTH_IDP_SAML_TECHNICAL_CONTACT", "it at example.org", "e-mail address"),
        ("NEXTAUTH_IDP_SAML_LOGO_SIZE", "big", "WIDTHxHEIGHT"),
        ("NEXTAUTH_IDP_SAML_SIGN_METADATA", "maybe", "true or false"),
        ("NEXTAUTH_IDP_SAML_METADATA_CACHE_SECONDS", "86400000", "whole seconds"),
    ],
)
def test_bad_settings_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({**FEDERATION, name: value})


def test_organization_needs_its_url() -> None:
    with pytest.raises(ConfigError, match="ORGANIZATION_URL: required"):
        load_settings({"NEXTAUTH_IDP_SAML_ORGANIZATION_NAME": "Example"})


def federation_metadata(saml: SamlContext, **changes: Any) -> str:  # noqa: F811
    saml.settings = replace(load_settings(FEDERATION), **changes)
    idpmetadata._cache.clear()
    return idpmetadata.build(saml)


def test_idp_metadata_for_a_federation_is_schema_valid_and_signed(saml: SamlContext) -> None:  # noqa: F811
    xml = federation_metadata(saml)
    metadata_schema().validate(xml)
    root = etree.fromstring(xml.encode())
    valid_until = datetime.fromisoformat(root.get("validUntil"))
    assert timedelta(days=9, hours=23) < valid_until - datetime.now(UTC) <= timedelta(days=10)
    assert root.get("cacheDuration") == "PT3600S"
    assert root.xpath("//shibmd:Scope/text()", namespaces=NS) == ["example.org"]
    assert root.xpath("//shibmd:Scope/@regexp", namespaces=NS) == ["false"]
    assert root.xpath("//mdui:DisplayName/text()", namespaces=NS) == ["Example University Login"]
    logo = root.xpath("//mdui:Logo", namespaces=NS)[0]
    assert (logo.text, logo.get("width"), logo.get("height")) == (
        "https://www.example.org/logo.png",
        "100",
        "50",
    )
    assert root.xpath("//md:OrganizationURL/text()", namespaces=NS) == ["https://www.example.org/"]
    contacts = {
        c.get("contactType"): c.findtext("md:EmailAddress", namespaces=NS)
        for c in root.xpath("md:ContactPerson", namespaces=NS)
    }
    assert contacts == {"technical": "mailto:it@example.org", "support": "mailto:help@example.org"}
    # Nothing the IdP receives is encrypted: no encryption key is published.
    assert {k.get("use") for k in root.xpath("//md:KeyDescriptor", namespaces=NS)} == {"signing"}
    # xmlsec1 verifies the signature with the IdP's certificate, and only with it.
    metadata_fetch.verify_signature(xml.encode(), saml.key().certificate or "")
    _key, other = pem_pair()
    with pytest.raises(metadata_fetch.FetchError):
        metadata_fetch.verify_signature(xml.encode(), other)


def test_idp_metadata_is_read_by_pysaml2_and_python3_saml(saml: SamlContext) -> None:  # noqa: F811
    xml = federation_metadata(saml)
    parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml)["idp"]
    assert parsed["entityId"] == saml.entity_id
    entity = md.entity_descriptor_from_string(xml)
    assert entity.organization.organization_name[0].text == "Example University"
    store = MetadataStore(None, None)
    source = MetaDataExtern(None, "memory", None)
    source.parse(xml)
    store.metadata["memory"] = source
    assert store.single_sign_on_service(saml.entity_id)


def test_idp_metadata_unsigned_when_so_configured(saml: SamlContext) -> None:  # noqa: F811
    xml = federation_metadata(saml, sign_metadata=False)
    metadata_schema().validate(xml)
    assert "<ds:Signature" not in xml
    plain = federation_metadata(saml, organization_name=None, contacts=(), display_name=None, logo_url=None)
    metadata_schema().validate(plain)


def test_a_tampered_idp_metadata_does_not_verify(saml: SamlContext) -> None:  # noqa: F811
    xml = federation_metadata(saml).replace("example.org</shibmd:Scope>", "evil.example</shibmd:Scope>")
    assert "evil.example" in xml
    with pytest.raises(metadata_fetch.FetchError):
        metadata_fetch.verify_signature(xml.encode(), saml.key().certificate or "")


# -- SP metadata from a URL ----------------------------------------------------------------------------


def pem_pair() -> tuple[str, str]:
    key, certificate = key_and_certificate("metadata signer")

    def lines(text: str) -> str:
        return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))

    return (
        f"-----BEGIN PRIVATE KEY-----\n{lines(key)}\n-----END PRIVATE KEY-----\n",
        f"-----BEGIN CERTIFICATE-----\n{lines(certificate)}\n-----END CERTIFICATE-----\n",
    )


def signed(xml: str, key_pem: str, certificate_pem: str, folder: Path) -> str:
    """``xml`` signed on its root as pysaml2 signs: its signature template, then ``xmlsec1 --sign``."""
    entity = md.entity_descriptor_from_string(xml)
    entity.id = "_md" + datetime.now(UTC).strftime("%H%M%S%f")
    entity.signature = pre_signature_part(
        entity.id,
        certificate_body(certificate_pem),
        None,
        digest_alg="http://www.w3.org/2001/04/xmlenc#sha256",
        sign_alg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    )
    (folder / "key.pem").write_text(key_pem)
    (folder / "cert.pem").write_text(certificate_pem)
    (folder / "in.xml").write_text(entity.to_string().decode())
    subprocess.run(
        [
            XMLSEC_BINARY, "--sign", "--privkey-pem", f"{folder}/key.pem,{folder}/cert.pem",
            "--id-attr:ID", f"{MD}:EntityDescriptor", "--output", f"{folder}/out.xml", f"{folder}/in.xml",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return (folder / "out.xml").read_text()


class MetadataServer:
    """Serves whatever ``body`` is at /metadata on a free loopback port."""

    def __init__(self) -> None:
        self.body = b""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/metadata" else 404)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metadata"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served() -> Iterator[MetadataServer]:
    server = MetadataServer()
    yield server
    server.close()


def add(registry: Registry, *flags: str) -> Any:
    parser = argparse.ArgumentParser()
    commands.arguments(parser)
    return commands.run(parser.parse_args(["add", *flags]), registry._engine)


@pytest.mark.e2e
def test_signed_metadata_from_a_url_is_registered_and_refreshed(
    saml: SamlContext,  # noqa: F811
    served: MetadataServer,
    tmp_path: Path,
) -> None:
    key, certificate = pem_pair()
    (tmp_path / "signer.pem").write_text(certificate)
    sp = ServiceProvider("fetched.example", idp_for(saml))
    served.body = signed(sp.metadata(), key, certificate, tmp_path).encode()
    answer = add(saml.registry, "--metadata-url", served.url, "--metadata-cert", str(tmp_path / "signer.pem"))
    assert answer["entity_id"] == sp.entity_id
    assert answer["metadata_url"] == served.url and answer["metadata_signed"] is True
    # The housekeeping's refresher: nothing is due yet (cacheDuration, at least five minutes).
    assert housekeeping.refresh_metadata(saml.services) == (0, 0)

    # The SP moves its ACS and publishes new signed metadata: the refresher takes it.
    moved = sp.metadata().replace("https://fetched.example/acs", "https://fetched.example/acs2")
    served.body = signed(moved, key, certificate, tmp_path).encode()
    later = datetime.now(UTC).timestamp() + 30 * 86400
    assert metadata_fetch.refresh_due(saml.registry, 3600, now=later) == (1, 0)
    current = saml.registry.get(sp.entity_id or "")
    assert current is not None and current.metadata.default_acs().location == "https://fetched.example/acs2"

    # A tampered copy is refused: the old one stays, and the operator can see why.
    served.body = served.body.replace(b"/acs2", b"/evil")
    assert metadata_fetch.refresh_due(saml.registry, 3600, now=later + 30 * 86400) == (0, 1)
    kept = saml.registry.get(sp.entity_id or "")
    assert kept is not None and kept.metadata.default_acs().location == "https://fetched.example/acs2"
    assert "does not verify" in (kept.options.source.last_error or "")  # type: ignore[union-attr]
    # Not due again before the retry time.
    assert metadata_fetch.refresh_due(saml.registry, 3600, now=later + 30 * 86400 + 60) == (0, 0)


@pytest.mark.e2e
def test_bad_metadata_from_a_url_is_refused(
    saml: SamlContext,  # noqa: F811
    served: MetadataServer,
    tmp_path: Path,
) -> None:
    key, certificate = pem_pair()
    _other_key, other_certificate = pem_pair()
    (tmp_path / "signer.pem").write_text(certificate)
    (tmp_path / "other.pem").write_text(other_certificate)
    sp = ServiceProvider("refused.example", idp_for(saml))
    good = signed(sp.metadata(), key, certificate, tmp_path)
    with_cert = ("--metadata-url", served.url, "--metadata-cert", str(tmp_path / "signer.pem"))

    served.body = sp.metadata().encode()  # unsigned
    with pytest.raises(ValueError, match="not signed"):
        add(saml.registry, *with_cert)
    served.body = good.encode()
    with pytest.raises(ValueError, match="does not verify"):
        add(saml.registry, "--metadata-url", served.url, "--metadata-cert", str(tmp_path / "other.pem"))
    served.body = good.replace("https://refused.example/acs", "https://evil.example/acs").encode()
    with pytest.raises(ValueError, match="does not verify"):
        add(saml.registry, *with_cert)
    expired = sp.metadata()
    expired = expired.replace(expired.split('validUntil="')[1].split('"')[0], "2020-01-01T00:00:00Z")
    served.body = signed(expired, key, certificate, tmp_path).encode()
    with pytest.raises(ValueError, match="expired"):
        add(saml.registry, *with_cert)
    served.body = good.encode() + b" " * spmetadata.MAX_METADATA_BYTES
    with pytest.raises(ValueError, match="larger than"):
        add(saml.registry, *with_cert)
    # A signature that covers only part of the document proves nothing about the rest.
    wrapped = good.replace("<ns0:SPSSODescriptor", '<ns0:SPSSODescriptor ID="_inner"', 1)
    served.body = wrapped.replace('URI="#_md', 'URI="#_inner" data-x="', 1).encode()
    with pytest.raises(ValueError, match="does not cover its root"):
        add(saml.registry, *with_cert)
    # No certificate: refused unless the operator says so explicitly.
    served.body = sp.metadata().encode()
    with pytest.raises(ValueError, match="needs --metadata-cert"):
        add(saml.registry, "--metadata-url", served.url)
    assert saml.registry.all() == []
    answer = add(saml.registry, "--metadata-url", served.url, "--insecure-unsigned")
    assert answer["metadata_signed"] is False
    with pytest.raises(ValueError, match="expected https://"):
        add(saml.registry, "--metadata-url", "http://sp.example/metadata", "--insecure-unsigned")


def test_without_an_exit_status_only_xmlsec1s_ok_verifies(
    monkeypatch: pytest.MonkeyPatch,
    saml: SamlContext,  # noqa: F811
) -> None:
    xml = federation_metadata(saml).encode()
    certificate = saml.key().certificate or ""
    monkeypatch.setattr(metadata_fetch, "run_xmlsec1", lambda _args: (None, b"", b"FAIL\n"))
    with pytest.raises(metadata_fetch.FetchError):
        metadata_fetch.verify_signature(xml, certificate)
    monkeypatch.setattr(
        metadata_fetch, "run_xmlsec1", lambda _args: (None, b"", b"OK\nSignedInfo References\n")
    )
    metadata_fetch.verify_signature(xml, certificate)
    monkeypatch.setattr(metadata_fetch, "run_xmlsec1", lambda _args: (1, b"", b"OK\n"))
    with pytest.raises(metadata_fetch.FetchError):
        metadata_fetch.verify_signature(xml, certificate)


def test_refresh_follows_cache_duration_and_valid_until() -> None:
    def entity(attributes: str) -> str:
        return (
            f'<md:EntityDescriptor xmlns:md="{MD}" entityID="https://sp.example/m" {attributes}>'
            f'<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
            'Location="https://sp.example/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>'
        )

    now = datetime.now(UTC).timestamp()
    assert metadata_fetch.cache_duration(entity('cacheDuration="PT1H30M"').encode()) == 5400
    assert metadata_fetch.cache_duration(entity('cacheDuration="P1DT2H"').encode()) == 93600
    assert metadata_fetch.cache_duration(entity('cacheDuration="soon"').encode()) is None
    assert metadata_fetch.next_refresh(entity(""), 21600, now) == now + 21600
    assert metadata_fetch.next_refresh(entity('cacheDuration="PT1H"'), 21600, now) == now + 3600
    assert metadata_fetch.next_refresh(entity('cacheDuration="PT10S"'), 21600, now) == now + 300
    until = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert metadata_fetch.next_refresh(entity(f'validUntil="{until}"'), 21600, now) < now + 3601


# -- end to end: the running IdP, a phone, python3-saml ------------------------------------------------


@pytest.mark.e2e
def test_a_live_login_with_metadata_from_a_url_and_non_default_options(
    tmp_path_factory: pytest.TempPathFactory, served: MetadataServer
) -> None:
    federation = {key: FEDERATION[key] for key in FEDERATION if "METADATA" not in key}
    system = start_system(tmp_path_factory.mktemp("saml-fed-system"), extra_env=federation)
    web = Browser(system)
    try:
        home = tmp_path_factory.mktemp("saml-fed-phone")
        assert run_app(home, "init", "--config", str(system.data_dir / "app-config.json"))[0] == 0
        assert run_app(home, "register", "--pin", PIN)[0] == 0
        enrol(system, home, "sam")
        idp_cli(
            system,
            "user",
            "set",
            "sam",
            "--email",
            "sam@example.org",
            "--email-verified",
            "--groups",
            "staff",
        )

        metadata = web.get("/saml/metadata").text
        metadata_schema().validate(metadata)
        assert "Example University Login</mdui:DisplayName>" in metadata
        idp = OneLogin_Saml2_IdPMetadataParser.parse(metadata)["idp"]

        folder = tmp_path_factory.mktemp("saml-fed-signer")
        key, certificate = pem_pair()
        (folder / "signer.pem").write_text(certificate)
        sp = FlexibleSp("live.example", idp)
        sp.want_messages_signed = False
        served.body = signed(sp.metadata(), key, certificate, folder).encode()
        added = idp_cli(
            system,
            *("saml-sp", "add", "--metadata-url", served.url, "--metadata-cert", str(folder / "signer.pem")),
            *("--sign", "assertion", "--signature-algorithm", "rsa-sha512", "--name-format", "basic"),
            *("--attributes", "eppn,scoped_affiliation,mail"),
        )
        assert added["metadata_url"] == served.url and added["sign"] == "assertion"

        url, request_id = sp.login_url()
        page = web.follow(web.get(url))
        answer = web.approve_on_phone(page, phone=home)
        _action, fields = post_form(answer.text)
        auth = sp.consume(fields, request_id)
        assert auth.get_errors() == [], auth.get_last_error_reason()
        assert auth.get_attribute("eduPersonPrincipalName") == ["sam@example.org"]
        assert auth.get_attribute("eduPersonScopedAffiliation") == [
            "member@example.org",
            "staff@example.org",
            "employee@example.org",
        ]
        assert auth.get_attribute("mail") == ["sam@example.org"]
        root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
        assert root.find("ds:Signature", NS) is None
        assert root.xpath("//ds:SignatureMethod/@Algorithm", namespaces=NS) == [
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
        ]
    finally:
        web.close()
        stop_system(system)
    assert system.process.returncode == 0, system.log()[-4000:]


@pytest.mark.e2e
def test_the_housekeeping_refreshes_metadata_when_due(
    saml: SamlContext,  # noqa: F811
    served: MetadataServer,
    tmp_path: Path,
) -> None:
    sp = ServiceProvider("kept-fresh.example", idp_for(saml))
    served.body = sp.metadata().encode()
    add(saml.registry, "--metadata-url", served.url, "--insecure-unsigned")
    served.body = sp.metadata().replace("kept-fresh.example/acs", "kept-fresh.example/new-acs").encode()
    [(entity_id, source)] = saml.registry.fetched_sources()
    saml.registry.refreshed(entity_id, None, replace(source, next_refresh_at=0.0))
    worker = housekeeping.Housekeeping(saml.services, metadata_interval=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            current = saml.registry.get(entity_id)
            assert current is not None
            if current.metadata.default_acs().location.endswith("/new-acs"):  # type: ignore[union-attr]
                break
            assert time.monotonic() < deadline, "the housekeeping did not refresh the metadata"
            gevent.sleep(0.05)
    finally:
        worker.stop()

"""SP metadata fetched from a URL: bounded download, XML signature checked against the configured
certificate with xmlsec1, validUntil honoured; refreshed by the IdP's housekeeping.

Only the signature on the document's root element counts (one ds:Signature, a child of the root, with one
Reference to the root's ID): a signature elsewhere in the document proves nothing about the rest of it.
A refresh that fails keeps the copy the IdP has, and says why in the log and in ``saml-sp list``.
"""

import logging
import re
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from saml2.sigver import XmlsecError

from idp.saml import spmetadata
from idp.saml.registry import Registry
from idp.saml.spoptions import MAX_PEM_BYTES, MetadataSource
from idp.saml.xmlsecurity import run_xmlsec1
from nextauth_core.digits import only_digits

log = logging.getLogger("nextauth.idp.saml")

TIMEOUT_SECONDS = 10.0
MIN_REFRESH_SECONDS = 300
RETRY_SECONDS = 900  # after a failed refresh
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
_DURATION = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


class FetchError(ValueError):
    """Why fetched metadata was not accepted; safe to show to the operator."""


def load_certificate(pem: str) -> str:
    """The PEM text of one X.509 certificate, checked."""
    if len(pem) > MAX_PEM_BYTES:
        raise ValueError("the certificate file is too large; is it the right file?")
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ValueError("not a PEM X.509 certificate") from exc
    return pem.strip() + "\n"


def check_url(url: str) -> str:
    parts = httpx.URL(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.host in spmetadata.LOOPBACK):
        raise ValueError(f"metadata URL {url[:200]!r}: expected https:// (http only on localhost)")
    return url


def download(url: str, limit: int = spmetadata.MAX_METADATA_BYTES) -> bytes:
    """The body at ``url``: at most ``limit`` bytes, within the timeout, no redirects to elsewhere."""
    try:
        with (
            httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client,
            client.stream("GET", url, headers={"Accept": "application/samlmetadata+xml"}) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"{url} answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared is not None and only_digits(declared) and int(declared) > limit:
                raise FetchError(f"the metadata is larger than {limit // 1024} KiB")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise FetchError(f"the metadata is larger than {limit // 1024} KiB")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise FetchError(f"fetching {url} failed ({type(exc).__name__})") from exc


def _root_signature(data: bytes) -> str:
    """The ID of the root element, if its one enveloped signature covers exactly the root; else FetchError."""
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise FetchError("the metadata is not well-formed XML without DTDs or entities") from exc
    root_id: str | None = root.get("ID")
    signatures = list(root.iter(f"{DS}Signature"))
    direct = root.findall(f"{DS}Signature")
    if not root_id or len(direct) != 1 or len(signatures) != 1:
        raise FetchError("the metadata is not signed (one ds:Signature on its root element, with an ID)")
    references = direct[0].findall(f"{DS}SignedInfo/{DS}Reference")
    if len(references) != 1 or references[0].get("URI") != f"#{root_id}":
        raise FetchError("the metadata's signature does not cover its root element")
    return root_id


def verify_signature(data: bytes, certificate_pem: str) -> None:
    """xmlsec1 checks the root's signature with this certificate's key only; FetchError if it fails."""
    root_id = _root_signature(data)
    with tempfile.TemporaryDirectory(prefix="nextauth-mdverify-") as folder:
        document = Path(folder) / "metadata.xml"
        document.write_bytes(data)
        certificate = Path(folder) / "cert.pem"
        certificate.write_text(certificate_pem)
        try:
            code, _out, err = run_xmlsec1(
                [
                    "--verify",
                    "--pubkey-cert-pem",
                    str(certificate),
                    # Keys named in the document itself are not trusted; only the one given here.
                    "--enabled-key-data",
                    "key-name",
                    "--id-attr:ID",
                    f"{MD}:EntityDescriptor",
                    "--id-attr:ID",
                    f"{MD}:EntitiesDescriptor",
                    "--node-id",
                    root_id,
                    str(document),
                ]
            )
        except XmlsecError as exc:  # xmlsec1 did not finish in time
            raise FetchError("the metadata's signature could not be checked in time") from exc
    lines = [line.strip() for line in err.decode(errors="replace").splitlines()]
    # Without an exit status (gevent's watcher reaped xmlsec1 first), its verdict line decides.
    verified = "OK" in lines or "Verification status: OK" in lines
    if code != 0 and not (code is None and verified):
        reason = lines
        log.debug("xmlsec1 refused metadata: %s", reason[-3:] if reason else code)
        raise FetchError("the metadata's signature does not verify with the configured certificate")


def cache_duration(data: bytes) -> float | None:
    """The root's cacheDuration (xs:duration) in seconds, if it has one we can read."""
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException):
        return None
    match = _DURATION.match((root.get("cacheDuration") or "").strip())
    if not match or not any(match.groups()):
        return None
    years, months, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return ((years * 365 + months * 30 + days) * 24 + hours) * 3600 + minutes * 60 + seconds


def fetch(url: str, certificate_pem: str | None) -> str:
    """Metadata from ``url``, verified with the certificate (None: the operator chose unsigned), parsed and
    not expired; FetchError (a ValueError) says why not."""
    data = download(check_url(url))
    if certificate_pem is not None:
        verify_signature(data, certificate_pem)
    try:
        text = data.decode("utf-8")
        metadata = spmetadata.parse(text)
    except UnicodeDecodeError as exc:
        raise FetchError("the metadata is not UTF-8 text") from exc
    except ValueError as exc:
        raise FetchError(f"the metadata is not usable: {exc}") from exc
    if metadata.expired():
        raise FetchError(
            f"the metadata expired on {metadata.valid_until:%Y-%m-%d %H:%M} UTC (validUntil); the SP must "
            "publish current metadata"
        )
    return text


def next_refresh(xml: str, default_seconds: float, now: float) -> float:
    """When to fetch again: the metadata's cacheDuration or the setting, whichever is sooner; and before
    validUntil."""
    data = xml.encode()
    interval = default_seconds
    cached = cache_duration(data)
    if cached is not None:
        interval = min(interval, cached)
    interval = max(interval, MIN_REFRESH_SECONDS)
    valid_until = spmetadata.parse(data).valid_until
    if valid_until is not None:
        interval = min(interval, max((valid_until.timestamp() - now) / 2, MIN_REFRESH_SECONDS))
    return now + interval


def source_for(url: str, certificate_pem: str | None, xml: str, default_seconds: float) -> MetadataSource:
    now = time.time()
    return MetadataSource(url, certificate_pem, now, next_refresh(xml, default_seconds, now))


def refresh_due(registry: Registry, default_seconds: float, now: float | None = None) -> tuple[int, int]:
    """Fetch again every SP whose refresh is due: (refreshed, failed). A failure keeps the old copy."""
    now = time.time() if now is None else now
    refreshed = failed = 0
    for entity_id, source in registry.fetched_sources():
        if source.next_refresh_at > now:
            continue
        try:
            xml = fetch(source.url, source.certificate)
            registry.refreshed(
                entity_id,
                xml,
                replace(
                    source,
                    fetched_at=now,
                    next_refresh_at=next_refresh(xml, default_seconds, now),
                    last_error=None,
                ),
            )
            refreshed += 1
        except ValueError as exc:
            failed += 1
            log.warning("SAML metadata of %s not refreshed, the old copy stays: %s", entity_id, exc)
            stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M")
            registry.refreshed(
                entity_id,
                None,
                replace(source, next_refresh_at=now + RETRY_SECONDS, last_error=f"{stamp} UTC: {exc}"[:500]),
            )
    return refreshed, failed

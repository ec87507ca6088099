"""The registered service providers: their metadata and what the IdP releases to each.

Registration is by metadata file (``nextauth saml-sp add``); registering the same entity id again replaces
its metadata and settings. A disabled or removed SP is unknown to the IdP.
"""

import functools
import json
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from idp.models import SamlServiceProvider
from idp.saml import attributes, spmetadata, spoptions
from idp.saml.names import NAMEID_FORMATS
from idp.saml.spmetadata import SpMetadata
from idp.saml.spoptions import MetadataSource, SpOptions


@dataclass(frozen=True)
class ServiceProvider:
    metadata: SpMetadata
    metadata_xml: str = field(repr=False)
    name_id_format: str  # a key of NAMEID_FORMATS
    attributes: tuple[str, ...]
    encrypt_assertions: bool
    disabled: bool
    options: SpOptions = field(default_factory=SpOptions)

    @property
    def entity_id(self) -> str:
        return self.metadata.entity_id

    @property
    def encryption_method(self) -> str:
        """The block encryption the SP's metadata allows (EncryptionMethod), AES-GCM unless it lists none."""
        return _encryption_method(self.metadata_xml)

    @property
    def name_id_format_uri(self) -> str:
        return NAMEID_FORMATS[self.name_id_format]

    def summary(self) -> dict[str, Any]:
        """What ``nextauth saml-sp list`` shows."""
        metadata = self.metadata
        return {
            "entity_id": self.entity_id,
            "name_id_format": self.name_id_format,
            "attributes": list(self.attributes),
            "encrypt_assertions": self.encrypt_assertions,
            "disabled": self.disabled,
            "authn_requests_signed": metadata.authn_requests_signed,
            "assertion_consumer_services": [e.location for e in metadata.acs if e.binding.endswith("POST")],
            "single_logout_services": [
                {"binding": e.binding.rsplit(":", 1)[-1], "location": e.location} for e in metadata.slo
            ],
            "valid_until": metadata.valid_until.isoformat() if metadata.valid_until else None,
            **self.options.summary(),
        }


def declared_name_id_format(metadata: SpMetadata) -> str:
    """The first NameIDFormat of the metadata the IdP issues (a key of NAMEID_FORMATS), else persistent:
    an SP listing only formats the IdP does not know still gets a pseudonym, not its e-mail address."""
    keys = {uri: key for key, uri in NAMEID_FORMATS.items()}
    return next((keys[uri] for uri in metadata.name_id_formats if uri in keys), "persistent")


@functools.lru_cache(maxsize=64)
def _parsed(xml: str) -> SpMetadata:
    # Requests name their SP on every message; the same metadata text parses to the same result.
    return spmetadata.parse(xml)


@functools.lru_cache(maxsize=64)
def _encryption_method(xml: str) -> str:
    return spoptions.encryption_method(xml)


def _provider(row: SamlServiceProvider) -> ServiceProvider:
    return ServiceProvider(
        metadata=_parsed(row.metadata_xml),
        metadata_xml=row.metadata_xml,
        name_id_format=row.name_id_format,
        attributes=tuple(json.loads(row.attributes)),
        encrypt_assertions=row.encrypt_assertions,
        disabled=row.disabled,
        options=spoptions.loads(row.options),
    )


def check(metadata: SpMetadata, metadata_xml: str, *, encrypt: bool, options: SpOptions) -> None:
    """What must hold between an SP's metadata and its settings; ValueError says what does not."""
    if metadata.expired():
        raise ValueError(
            f"the metadata expired on {metadata.valid_until:%Y-%m-%d %H:%M} UTC (validUntil); ask the SP "
            "for current metadata"
        )
    if encrypt and not any(
        isinstance(certificate.public_key(), rsa.RSAPublicKey) for certificate in metadata.encryption_certs
    ):
        raise ValueError(
            "--encrypt needs an RSA certificate for encryption in the metadata "
            '(a KeyDescriptor with use="encryption" or without use)'
        )
    if encrypt:
        spoptions.encryption_method(metadata_xml)  # raises if the SP allows nothing the IdP can do
    if metadata.want_assertions_signed and not options.sign_assertion:
        raise ValueError(
            "the SP's metadata says WantAssertionsSigned: sign the assertion (--sign assertion or both)"
        )


class Registry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self,
        metadata_xml: str,
        *,
        name_id_format: str | None = None,
        released: tuple[str, ...] = attributes.DEFAULT,
        encrypt: bool = False,
        options: SpOptions | None = None,
    ) -> tuple[ServiceProvider, bool]:
        """Register (or replace) the SP the metadata describes; returns it and whether it replaced one.
        Without ``name_id_format``, the SP gets the first NameIDFormat its metadata declares that the IdP
        issues, else persistent."""
        metadata = spmetadata.parse(metadata_xml)
        if name_id_format is None:
            name_id_format = declared_name_id_format(metadata)
        if name_id_format not in NAMEID_FORMATS:
            raise ValueError(
                f"name id format {name_id_format!r}: expected one of {', '.join(NAMEID_FORMATS)}"
            )
        unknown = [key for key in released if key not in attributes.CATALOGUE]
        if unknown:
            raise ValueError(f"unknown attributes {unknown}")
        options = spoptions.check(options or SpOptions())
        check(metadata, metadata_xml, encrypt=encrypt, options=options)
        with Session(self._engine) as db, db.begin():
            row = db.get(SamlServiceProvider, metadata.entity_id)
            replaced = row is not None
            if row is None:
                row = SamlServiceProvider(entity_id=metadata.entity_id)
                db.add(row)
            row.metadata_xml = metadata_xml
            row.name_id_format = name_id_format
            row.attributes = json.dumps(list(released))
            row.encrypt_assertions = encrypt
            row.disabled = False
            row.options = options.dumps()
            provider = _provider(row)
        return provider, replaced

    def change(
        self,
        entity_id: str,
        *,
        released: tuple[str, ...] | None = None,
        encrypt: bool | None = None,
        **options: Any,
    ) -> ServiceProvider:
        """Change a registered SP's settings (None: unchanged), checked as at registration."""
        with Session(self._engine) as db, db.begin():
            row = db.get(SamlServiceProvider, entity_id)
            if row is None:
                raise ValueError(f"no SP {entity_id[:200]!r} is registered")
            changed = spoptions.loads(row.options).changed(**options)
            wants_encryption = row.encrypt_assertions if encrypt is None else encrypt
            check(_parsed(row.metadata_xml), row.metadata_xml, encrypt=wants_encryption, options=changed)
            if released is not None:
                row.attributes = json.dumps(list(released))
            row.encrypt_assertions = wants_encryption
            row.options = changed.dumps()
            return _provider(row)

    def fetched_sources(self) -> list[tuple[str, MetadataSource]]:
        """Every enabled SP whose metadata is fetched from a URL, with where from."""
        with Session(self._engine) as db:
            enabled = select(SamlServiceProvider).where(SamlServiceProvider.disabled.is_(False))
            rows = db.scalars(enabled).all()
            found = [(row.entity_id, spoptions.loads(row.options).source) for row in rows]
        return [(entity_id, source) for entity_id, source in found if source is not None]

    def refreshed(self, entity_id: str, metadata_xml: str | None, source: MetadataSource) -> None:
        """Store what a refresh found: new (verified) metadata, or None to keep the old copy; and the source's
        bookkeeping (when fetched, when next, the last error). New metadata must describe the same SP and
        still suit its settings; else ValueError and nothing changes."""
        with Session(self._engine) as db, db.begin():
            row = db.get(SamlServiceProvider, entity_id)
            if row is None:
                return
            current = spoptions.loads(row.options)
            if metadata_xml is not None:
                metadata = spmetadata.parse(metadata_xml)
                if metadata.entity_id != entity_id:
                    raise ValueError(f"the metadata now describes {metadata.entity_id[:200]!r}, another SP")
                check(metadata, metadata_xml, encrypt=row.encrypt_assertions, options=current)
                row.metadata_xml = metadata_xml
            row.options = replace(current, source=source).dumps()

    def get(self, entity_id: str) -> ServiceProvider | None:
        """The SP if it is registered and enabled."""
        if not entity_id or len(entity_id) > spmetadata.MAX_ENTITY_ID:
            return None
        with Session(self._engine) as db:
            row = db.get(SamlServiceProvider, entity_id)
            if row is None or row.disabled:
                return None
            return _provider(row)

    def all(self) -> list[ServiceProvider]:
        with Session(self._engine) as db:
            rows = db.scalars(select(SamlServiceProvider).order_by(SamlServiceProvider.entity_id)).all()
            return [_provider(row) for row in rows]

    def remove(self, entity_id: str) -> bool:
        with Session(self._engine) as db, db.begin():
            row = db.get(SamlServiceProvider, entity_id)
            if row is None:
                return False
            db.delete(row)
            return True

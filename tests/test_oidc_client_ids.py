"""Client ids are safe to type on a command line: none starts with '-'."""

from pathlib import Path
from unittest import mock

import pytest

from authserver.storage import db
from idp.oidc import clients
from idp.oidc.clients import ClientRegistry, new_client_id

METADATA = {
    "redirect_uris": ["https://rp.example/callback"],
    "token_endpoint_auth_method": "client_secret_basic",
}


def test_generated_ids_skip_a_leading_dash() -> None:
    draws = iter(["-starts-with-dash", "-again", "fine-id_1"])
    with mock.patch.object(clients.secrets, "token_urlsafe", lambda _n: next(draws)):
        assert new_client_id() == "fine-id_1"


def test_registry_refuses_a_leading_dash(tmp_path: Path) -> None:
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    registry = ClientRegistry(engine)
    with pytest.raises(ValueError, match="not starting with '-'"):
        registry.add("Shop", METADATA, client_id="-nfb1mbrdm")
    client, secret = registry.add("Shop", METADATA)
    assert not client.client_id.startswith("-") and secret


@pytest.mark.parametrize("client_id", ["cl\u00efent", "\u0430pp", "app\uff11"])
def test_registry_refuses_letters_and_digits_beyond_ascii(tmp_path: Path, client_id: str) -> None:
    """str.isalnum is true for accented letters, for the Cyrillic a that looks like the Latin one, and for
    fullwidth digits: an id that reads like another client's, or that a terminal shows otherwise."""
    engine = db.create_engine_for(f"sqlite:///{tmp_path / 'idp.db'}")
    db.upgrade(engine)
    with pytest.raises(ValueError, match="ASCII letters"):
        ClientRegistry(engine).add("Shop", METADATA, client_id=client_id)

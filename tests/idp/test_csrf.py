"""Form tokens of the IdP's own pages: one per session and purpose, checked in constant time."""

from flask import Flask

from idp.csrf import form_token, form_token_valid


def test_a_token_fits_its_session_and_purpose_only() -> None:
    app = Flask("csrf-test")
    app.secret_key = b"k" * 32
    with app.app_context():
        token = form_token("console", "sid-1")
        assert form_token_valid("console", "sid-1", token)
        assert not form_token_valid("account", "sid-1", token)  # the console's token is not My account's
        assert not form_token_valid("console", "sid-2", token)
        assert not form_token_valid("console", "sid-1", None)
        assert not form_token_valid("console", "sid-1", "")
        app.secret_key = b"j" * 32
        assert not form_token_valid("console", "sid-1", token)  # a new key ends every token

"""examples/oidc_client.py answers an authorization error with a page of its own, never a crash (the end to
end case, a user who denies on the consent page, is in tests/test_page_accessibility.py)."""

from examples import oidc_client


def client():  # type: ignore[no-untyped-def]
    # The IdP is never asked: both answers are decided before any call to it.
    return oidc_client.create_app("http://127.0.0.1:9", "example-id", "example-secret").test_client()


def test_access_denied_is_a_page() -> None:
    answer = client().get("/callback?error=access_denied&error_description=The+user+said+no&state=s1")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 403
    assert "You did not allow this application" in text and 'href="/login"' in text


def test_a_callback_without_its_login_is_a_page() -> None:
    answer = client().get("/callback?code=c1&state=not-ours")
    assert answer.status_code == 400 and "The login did not complete" in answer.get_data(as_text=True)


def test_the_error_text_is_escaped() -> None:
    answer = client().get("/callback?error=%3Cscript%3E&state=s")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "<script>" not in text and "&lt;script&gt;" in text

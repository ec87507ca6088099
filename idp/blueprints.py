"""The IdP's protocol front-ends, each a Flask blueprint over the shared login session (``idp.context``)."""

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    # Imported here so that each front-end's dependencies load only when an app is built.
    from idp.oidc.decoupled_endpoints import blueprint as oidc_decoupled
    from idp.oidc.endpoints import blueprint as oidc

    found: list[Blueprint] = [oidc, oidc_decoupled]
    from idp.oidc.consent_api import blueprint as admin_api

    found.append(admin_api)
    from idp.forwardauth import blueprint as forward_auth

    found.append(forward_auth())
    from idp.saml.endpoints import blueprint as saml

    found.append(saml)
    from idp.console import blueprint as console

    found.append(console)
    return found

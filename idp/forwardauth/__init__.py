"""Forward-auth: protect applications behind Traefik with the IdP's session (docs/forward-auth.md).

Traefik's forwardAuth middleware asks ``/auth/forward`` about every request; the Traefik plugin in
traefik-plugin/nextauth/ decides the same locally, from what ``/auth/keys``, ``/auth/ended`` and
``/auth/policy`` publish, and asks ``/auth/forward`` when unsure.
"""

from idp.forwardauth.views import blueprint

__all__ = ["blueprint"]

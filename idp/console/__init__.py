"""The admin console at ``/admin/``: server-rendered pages over ns's REST API (with the IdP's API key) and
the IdP's own registries, for the directory's admin and help-desk groups (``idp.console.base``)."""

from idp.console import people, setup
from idp.console.base import blueprint

__all__ = ["blueprint", "people", "setup"]

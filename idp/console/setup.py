"""The console's pages about the installation, for the admin group only: ns's virtual servers, API keys
and client certificates (through ns's REST API with the IdP's key), and the IdP's OIDC clients and SAML
service providers (whose changes go to the IdP's audit trail, ``idp.admin_audit``)."""

from typing import Any

from flask import redirect, request, url_for

from idp.admin_audit import console_actor
from idp.console.base import BadForm, admin_only, blueprint, confirm, field, log, operator, page
from idp.context import services
from idp.oidc.clients import HMAC_SECRET, ClientRegistry
from idp.oidc.endpoints import provider
from idp.saml.config import saml
from nextauth_core.digits import only_digits

ROLES = ("sessions", "users", "accounts", "servers", "createserver", "root")
PIN_POLICIES = {"-1": "never", "0": "every time"}


# -- virtual servers ----------------------------------------------------------------------------------


@blueprint.get("/servers")
@admin_only
def servers() -> Any:
    return page("console/servers.html", servers=services().ns.servers(), done=request.args.get("done"))


@blueprint.post("/servers/edit")
@admin_only
def edit_server() -> Any:
    server_id = field("server", 64)
    changes: dict[str, Any] = {"name": request.form.get("name", "").strip()}
    logo = request.form.get("logo_url", "").strip()
    changes["logo_url"] = logo or None
    announce: dict[str, str] = {}
    for line in request.form.get("announce", "").splitlines():
        key, sep, value = line.partition(":")
        if line.strip() and not sep:
            return page(
                "console/error.html", 400, message=f"Announce line {line!r}: write it as 'Label: text'."
            )
        if key.strip():
            announce[key.strip()] = value.strip()
    changes["announce"] = announce
    for setting in ("login_pin_timeout", "transaction_pin_timeout"):
        text = request.form.get(setting, "").strip()
        try:
            changes[setting] = int(text)
        except ValueError:
            return page("console/error.html", 400, message=f"{setting}: a whole number of seconds, 0 or -1.")
    services().ns.update_server(server_id, changes)
    log.info("%s changed server %s: %s", operator().user.sub, server_id, ", ".join(sorted(changes)))
    return redirect(url_for("console.servers", done=server_id), code=303)


# -- API keys -----------------------------------------------------------------------------------------


@blueprint.get("/keys")
@admin_only
def keys() -> Any:
    return page(
        "console/keys.html", keys=services().ns.api_keys(), roles=ROLES, done=request.args.get("done")
    )


@blueprint.post("/keys")
@admin_only
def create_key() -> Any:
    name = request.form.get("name", "").strip()
    roles = [role for role in request.form.getlist("roles") if role in ROLES]
    server = request.form.get("server", "").strip() or None
    if not name or len(name) > 200 or not name.isprintable() or not roles:
        return page("console/error.html", 400, message="Give the key a name and at least one role.")
    created = services().ns.create_api_key(name, roles, server)
    log.info(
        "%s created API key %s (%s) with %s", operator().user.sub, created.get("id"), name, ",".join(roles)
    )
    # The secret is in this answer only: ns keeps its hash, and no page here can show it again.
    return page("console/key_created.html", key=created)


@blueprint.post("/keys/revoke")
@admin_only
def revoke_key() -> Any:
    key_id = request.form.get("key", "")
    if not only_digits(key_id) or len(key_id) > 18:
        raise BadForm("no key")
    asked = confirm(
        f"Revoke API key {key_id} ({request.form.get('name', '')[:200]})?",
        {"key": key_id, "name": request.form.get("name", "")[:200]},
        ["Whatever uses it is refused at once on this ns instance, within seconds on the others."],
    )
    if asked is not None:
        return asked
    services().ns.revoke_api_key(int(key_id))
    log.info("%s revoked API key %s", operator().user.sub, key_id)
    return redirect(url_for("console.keys", done="revoked"), code=303)


# -- client certificates -----------------------------------------------------------------------------

MAX_PEM = 16 * 1024


@blueprint.get("/certificates")
@admin_only
def certificates() -> Any:
    return page(
        "console/certificates.html",
        certificates=services().ns.client_certificates(),
        roles=ROLES,
        done=request.args.get("done"),
    )


@blueprint.post("/certificates")
@admin_only
def add_certificate() -> Any:
    name = request.form.get("name", "").strip()
    roles = [role for role in request.form.getlist("roles") if role in ROLES]
    server = request.form.get("server", "").strip() or None
    pem = request.form.get("certificate", "").strip()
    if not name or len(name) > 200 or not name.isprintable() or not roles:
        return page("console/error.html", 400, message="Give the certificate a name and at least one role.")
    if len(pem) > MAX_PEM or "-----BEGIN CERTIFICATE-----" not in pem:
        return page("console/error.html", 400, message="Paste one certificate in PEM (BEGIN CERTIFICATE).")
    added = services().ns.add_client_certificate(name, roles, server, pem + "\n")
    log.info(
        "%s listed client certificate %s (%s) with %s",
        operator().user.sub,
        added.get("sha256"),
        name,
        ",".join(roles),
    )
    return redirect(url_for("console.certificates", done=f"listed {name}"), code=303)


@blueprint.post("/certificates/revoke")
@admin_only
def revoke_certificate() -> Any:
    certificate_id = request.form.get("certificate", "")
    if not only_digits(certificate_id) or len(certificate_id) > 12:
        raise BadForm("no certificate")
    name = request.form.get("name", "")[:200]
    asked = confirm(
        f"Revoke client certificate {certificate_id} ({name})?",
        {"certificate": certificate_id, "name": name},
        [
            "Clients presenting it are refused at once on this ns instance, within seconds on the others.",
            "A revoked certificate cannot be listed again; the client needs a new one.",
        ],
    )
    if asked is not None:
        return asked
    services().ns.revoke_client_certificate(int(certificate_id))
    log.info("%s revoked client certificate %s", operator().user.sub, certificate_id)
    return redirect(url_for("console.certificates", done="revoked"), code=303)


# -- OIDC clients -------------------------------------------------------------------------------------


def _registry() -> ClientRegistry:
    return provider().clients


@blueprint.get("/clients")
@admin_only
def clients() -> Any:
    registry = _registry()
    return page(
        "console/clients.html",
        clients=registry.all(),
        disabled=registry.disabled_ids(),
        done=request.args.get("done"),
    )


@blueprint.get("/client")
@admin_only
def client() -> Any:
    client_id = request.args.get("id", "")
    found = next((c for c in _registry().all() if c.client_id == client_id), None)
    if found is None:
        return page("console/error.html", 404, message="No such OIDC client.")
    return page(
        "console/client.html",
        client=found,
        disabled=client_id in _registry().disabled_ids(),
        # Never the shared secret a client_secret_jwt client signs with.
        metadata=sorted((k, v) for k, v in found.client_metadata.items() if k != HMAC_SECRET),
    )


@blueprint.post("/client/state")
@admin_only
def client_state() -> Any:
    client_id = field("client", 64)
    disable = request.form.get("disabled") == "true"
    if not _registry().set_disabled(client_id, disable):
        return page("console/error.html", 404, message="No such OIDC client.")
    log.info("%s %s OIDC client %s", operator().user.sub, "disabled" if disable else "enabled", client_id)
    services().trail().record(
        "oidc_client.disabled" if disable else "oidc_client.enabled",
        actor=console_actor(operator().user.sub),
        data={"client": client_id},
    )
    return redirect(url_for("console.client", id=client_id), code=303)


@blueprint.post("/client/remove")
@admin_only
def remove_client() -> Any:
    client_id = field("client", 64)
    asked = confirm(
        f"Remove OIDC client {client_id}?",
        {"client": client_id},
        ["Its registration is deleted; its tokens stop working. Disabling it instead can be undone."],
    )
    if asked is not None:
        return asked
    if not _registry().remove(client_id):
        return page("console/error.html", 404, message="No such OIDC client.")
    log.info("%s removed OIDC client %s", operator().user.sub, client_id)
    services().trail().record(
        "oidc_client.removed", actor=console_actor(operator().user.sub), data={"client": client_id}
    )
    return redirect(url_for("console.clients", done="removed"), code=303)


# -- SAML service providers ---------------------------------------------------------------------------


@blueprint.get("/saml")
@admin_only
def saml_sps() -> Any:
    providers = [sp.summary() for sp in saml().registry.all()]
    return page("console/saml.html", providers=providers, done=request.args.get("done"))


@blueprint.post("/saml/remove")
@admin_only
def remove_sp() -> Any:
    entity_id = field("entity", 1024)
    asked = confirm(
        f"Remove SAML service provider {entity_id}?",
        {"entity": entity_id},
        ["The IdP forgets its metadata and settings and answers its requests with an error."],
    )
    if asked is not None:
        return asked
    if not saml().registry.remove(entity_id):
        return page("console/error.html", 404, message="No such SAML service provider.")
    log.info("%s removed SAML SP %s", operator().user.sub, entity_id)
    services().trail().record(
        "saml_sp.removed", actor=console_actor(operator().user.sub), data={"entity": entity_id}
    )
    return redirect(url_for("console.saml_sps", done="removed"), code=303)

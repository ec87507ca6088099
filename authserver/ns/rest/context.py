"""What the REST views share, kept on the Flask app: the ns services they translate HTTP to."""

from dataclasses import dataclass

from flask import current_app

from authserver.audit import AuditTrail
from authserver.config import Network
from authserver.ns.access import AccessControl
from authserver.ns.accounts import AccountService
from authserver.ns.attributes import Attributes
from authserver.ns.enrolment import EnrolmentService
from authserver.ns.login import LoginService
from authserver.ns.permissions import Permissions
from authserver.ns.push import PushLoginService
from authserver.ns.servers import ServerRegistry
from authserver.ns.transactions import TransactionService

EXTENSION = "nextauth_ns_api"


@dataclass
class NsServices:
    servers: ServerRegistry
    access: AccessControl
    login: LoginService
    enrolment: EnrolmentService
    push: PushLoginService
    transactions: TransactionService
    accounts: AccountService
    audit: AuditTrail
    permissions: Permissions
    attributes: Attributes
    trusted_proxies: tuple[Network, ...] = ()


def services() -> NsServices:
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]

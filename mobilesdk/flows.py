"""The app's flows, as the Android and iOS SDKs run them: register with the SFS, check the second factor,
enrol an account, log in. Each step talks to one service over its own sigmai channel.
"""

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from mobilesdk.channel import Channel, RemoteError, open_channel
from mobilesdk.store import AccountRecord, AccountStore, AppStore, StoreError
from nextauth_core import envelope, evidence
from nextauth_core import pin as pin_proofs
from nextauth_core.encoding import b64url as b64
from nextauth_core.encoding import unb64url as unb64
from nextauth_core.qr import QRPayload
from nextauth_core.statements import (
    ENROL_CODE_EXPORTER,
    LOGIN_EXPORTER,
    PIN_CHANGE_EXPORTER,
    SFS_PROOF_EXPORTER,
    confirmation_code,
    login_statement,
    pin_change_statement,
    sfs_proof_statement,
)
from nextauth_core.visualhash import visual_hash
from sigmai import DeviceIdentity


class FlowError(Exception):
    """A flow stopped; the message tells the person what to do."""


@dataclass
class App:
    """The app on one phone: its home folder holds the device key, the SFS/MC pins and the accounts."""

    home: Path
    timeout: float = 10.0
    cafile: str | None = None

    def __post_init__(self) -> None:
        self.store = AppStore(self.home)
        self.accounts = AccountStore(self.home)

    def _channel(self, uri: str, identity: DeviceIdentity, key_hash: bytes) -> Channel:
        return open_channel(uri, identity, key_hash, timeout=self.timeout, cafile=self.cafile)

    def _sfs(self) -> Channel:
        endpoint = self.store.service("sfs")
        return self._channel(endpoint.uri, self.store.device(), endpoint.key_hash)

    # -- registration with the SFS ---------------------------------------------------------------------

    def register(
        self, pin: str, *, biometric: bool = False, push_provider: str = "none", push_token: str | None = None
    ) -> dict[str, Any]:
        if self.accounts.second_factor().get("device_secret"):
            raise FlowError("This app is registered already.")
        request = pin_proofs.start(pin)
        device_secret = pin_proofs.new_device_secret()
        biometric_key = ed25519.Ed25519PrivateKey.generate() if biometric else None
        with self._sfs() as sfs:
            evaluated = unb64(
                sfs.request("register.start", {"blinded_element": b64(request.blinded_element)})[
                    "evaluated_element"
                ]
            )
            verifier = pin_proofs.verifier(pin, request, evaluated, device_secret)
            params: dict[str, Any] = {"pin_verifier": b64(verifier)}
            if biometric_key is not None:
                params["biometric_key"] = b64(biometric_key.public_key().public_bytes_raw())
            answer = sfs.request("register.finish", params)
        secrets: dict[str, Any] = {"device_secret": b64(device_secret)}
        if biometric_key is not None:
            # A phone keeps this key in secure hardware behind the biometric prompt.
            secrets["biometric_key"] = b64(biometric_key.private_bytes_raw())
        mailbox = self._register_mailbox(push_provider, push_token) if "mc" in self.store.services() else None
        if mailbox is not None:
            secrets["mailbox"] = mailbox
        self.accounts.save_second_factor(secrets)
        return {
            "registered": True,
            "biometric": biometric,
            "max_attempts": answer.get("max_attempts"),
            "mailbox": mailbox["mailbox"] if mailbox else None,
        }

    def change_pin(self, old_pin: str, new_pin: str) -> dict[str, Any]:
        """Replace the PIN at the SFS, proving the old one; a wrong old PIN counts like one at login.

        The device secret stays: only the verifier at the SFS changes, so nothing on the phone is
        written and a lost answer cannot leave the phone and the SFS disagreeing about which secret
        to use (the PIN that works is then whichever the SFS kept, and a retry with it tells).
        """
        secrets = self.accounts.second_factor()
        if not secrets.get("device_secret"):
            raise FlowError("Register this app first: nextauth-app register --pin PIN")
        if unicodedata.normalize("NFC", old_pin) == unicodedata.normalize("NFC", new_pin):
            raise FlowError("The new PIN is the old one; choose another.")
        try:
            old_request = pin_proofs.start(old_pin)
            new_request = pin_proofs.start(new_pin)
        except ValueError as exc:
            raise FlowError(str(exc)) from exc
        device_secret = unb64(secrets["device_secret"])
        with self._sfs() as sfs:
            started = sfs.request(
                "pin.change.start",
                {
                    "blinded_element": b64(old_request.blinded_element),
                    "new_blinded_element": b64(new_request.blinded_element),
                },
            )
            verifier = pin_proofs.verifier(
                new_pin, new_request, unb64(started["new_evaluated_element"]), device_secret
            )
            statement = pin_change_statement(
                sfs_challenge=unb64(started["challenge"]),
                channel_binding=sfs.export(PIN_CHANGE_EXPORTER, b"", 32),
                new_pin_verifier=verifier,
            )
            proof = pin_proofs.prove(
                old_pin, old_request, unb64(started["evaluated_element"]), device_secret, statement
            )
            answer = sfs.request("pin.change.finish", {"proof": b64(proof), "pin_verifier": b64(verifier)})
        return {"changed": bool(answer.get("changed")), "max_attempts": answer.get("max_attempts")}

    def _mc(self) -> Channel:
        endpoint = self.store.service("mc")
        return self._channel(endpoint.uri, self.store.device(), endpoint.key_hash)

    def webpush_key(self) -> str:
        """The MC's VAPID public key: a web app gives it to the browser's ``pushManager.subscribe`` as
        ``applicationServerKey``, then registers the subscription as its push token."""
        with self._mc() as mc:
            return str(mc.request("webpush.key", {})["vapid_public_key"])

    def _register_mailbox(self, provider: str, push_token: str | None) -> dict[str, str]:
        with self._mc() as mc:
            answer = mc.request("mailbox.register", {"push_provider": provider, "push_token": push_token})
        return {
            "key_hash": self.store.service("mc").key_hash.hex(),
            "mailbox": answer["mailbox"],
            "token": answer["token"],
        }

    def attest(
        self, *, pin: str | None, audience: str, ns_challenge: bytes, purpose: str, account: DeviceIdentity
    ) -> str:
        """Check the second factor at the SFS and get its attestation for ns."""
        secrets = self.accounts.second_factor()
        if not secrets.get("device_secret"):
            raise FlowError("Register this app first: nextauth-app register --pin PIN")
        thumbprint = account.peer_key.thumbprint()
        with self._sfs() as sfs:
            if pin is None:
                if not secrets.get("biometric_key"):
                    raise FlowError("Give the PIN (--pin): no biometric is set up.")
                challenge = unb64(sfs.request("biometric.challenge")["challenge"])
                statement = self._statement(sfs, challenge, audience, ns_challenge, purpose, thumbprint)
                key = ed25519.Ed25519PrivateKey.from_private_bytes(unb64(secrets["biometric_key"]))
                proof = key.sign(pin_proofs.PROOF_CONTEXT + statement)
                method = "biometric"
            else:
                request = pin_proofs.start(pin)
                answer = sfs.request("pin.evaluate", {"blinded_element": b64(request.blinded_element)})
                challenge = unb64(answer["challenge"])
                statement = self._statement(sfs, challenge, audience, ns_challenge, purpose, thumbprint)
                proof = pin_proofs.prove(
                    pin,
                    request,
                    unb64(answer["evaluated_element"]),
                    unb64(secrets["device_secret"]),
                    statement,
                )
                method = "pin"
            return str(
                sfs.request(
                    "attest",
                    {
                        "method": method,
                        "purpose": purpose,
                        "audience": audience,
                        "account_thumbprint": thumbprint,
                        "ns_challenge": b64(ns_challenge),
                        "proof": b64(proof),
                    },
                )["attestation"]
            )

    @staticmethod
    def _statement(
        sfs: Channel, challenge: bytes, audience: str, ns_challenge: bytes, purpose: str, thumbprint: str
    ) -> bytes:
        return sfs_proof_statement(
            sfs_challenge=challenge,
            channel_binding=sfs.export(SFS_PROOF_EXPORTER, b"", 32),
            audience=audience,
            ns_challenge=ns_challenge,
            purpose=purpose,
            account_thumbprint=thumbprint,
        )

    # -- scanning a code -------------------------------------------------------------------------------

    def scan(
        self, text: str, *, pin: str | None, approve: bool = True, account_id: str | None = None
    ) -> dict[str, Any]:
        try:
            payload = QRPayload.decode(text)
        except ValueError as exc:
            raise FlowError(str(exc)) from exc
        if payload.kind == "enrol":
            return self.enrol(payload, pin=pin)
        if payload.kind == "sign":
            return self.sign(payload, pin=pin, approve=approve, account_id=account_id)
        return self.login(payload, pin=pin, approve=approve, account_id=account_id)

    def enrol(self, payload: QRPayload, *, pin: str | None) -> dict[str, Any]:
        sfs = self.store.service("sfs")
        identity, key_file = self.accounts.new_account_key()
        encryption_key = x25519.X25519PrivateKey.generate()
        params: dict[str, Any] = {
            "enrolment": payload.item_id,
            "secret": b64(payload.secret),
            "sfs_key_hash": sfs.key_hash.hex(),
        }
        mailbox = self.accounts.second_factor().get("mailbox")
        if mailbox:
            params["mc"] = mailbox
            params["encryption_key"] = b64(encryption_key.public_key().public_bytes_raw())
        with self._channel(payload.sigmai_uri, identity, payload.server_key_hash) as ns:
            started = ns.request("enrol.start", params)
            token = self.attest(
                pin=pin,
                audience=started["audience"],
                ns_challenge=unb64(started["ns_challenge"]),
                purpose="enrol",
                account=identity,
            )
            finished = ns.request("enrol.finish", {"attestation": token})
            server_public_key = ns.server.raw.hex()  # proven in the handshake against the pinned hash
            shown = visual_hash(ns.server.raw)
            own_code = confirmation_code(ns.export(ENROL_CODE_EXPORTER, payload.item_id.encode(), 8))
        if finished["confirmation_code"] != own_code:
            raise FlowError("The server's confirmation code differs from this phone's: do not confirm.")
        server = started["server"]
        self.accounts.add_account(
            AccountRecord(
                id=finished["account"],
                server_id=server["id"],
                server_name=server["name"],
                sigmai_uri=payload.sigmai_uri,
                server_key_hash=payload.server_key_hash,
                user_id=started["userid"],
                key_file=key_file,
                server_public_key=server_public_key,
            )
        )
        self.accounts.save_encryption_key(finished["account"], encryption_key)
        return {
            "action": "enrol",
            "server": server["name"],
            "userid": started["userid"],
            "account": finished["account"],
            "confirmation_code": own_code,
            # For the person to compare with the picture and words on the enrolment page.
            "visual_hash": shown.to_dict(),
            "next": "type this code into the application to finish the enrolment",
        }

    def login(
        self,
        payload: QRPayload,
        *,
        pin: str | None,
        approve: bool,
        account_id: str | None,
        number: int | None = None,
    ) -> dict[str, Any]:
        candidates = self.accounts.accounts_at(payload.server_key_hash)
        if account_id is not None:
            candidates = [a for a in candidates if a.id == account_id]
        if not candidates:
            raise FlowError("This app has no account at this service: enrol first.")
        # The newest usable account: a phone shows a choice when there are several; an enrolment that
        # was never confirmed leaves an account the server does not know, which is skipped.
        for record in reversed(candidates):
            identity = self.accounts.account_key(record)
            with self._channel(record.sigmai_uri, identity, record.server_key_hash) as ns:
                try:
                    started = ns.request(
                        "login.start", {"qr_id": payload.item_id, "challenge": b64(payload.secret)}
                    )
                except RemoteError as exc:
                    if exc.code == "unknown_account" and record is not candidates[0]:
                        continue
                    raise
                return self._finish_login(ns, record, identity, payload, started, pin, approve, number)
        raise FlowError("This app has no account at this service: enrol first.")

    def _finish_login(
        self,
        ns: Channel,
        record: AccountRecord,
        identity: DeviceIdentity,
        payload: QRPayload,
        started: dict[str, Any],
        pin: str | None,
        approve: bool,
        number: int | None,
    ) -> dict[str, Any]:
        shown = {
            "action": "login",
            "server": started["server"]["name"],
            "announce": started["server"].get("announce", {}),
            "requester": started.get("requester", {}),
            "userid": record.user_id,
            "account": record.id,
        }
        if started.get("context"):
            shown["context"] = started["context"]
            shown["shows"] = context_lines(started["context"])
        if not approve:
            ns.request("login.cancel")
            return {**shown, "result": "declined"}
        ns_challenge = unb64(started["ns_challenge"])
        params: dict[str, Any] = {}
        if started.get("second_factor") == "required":
            try:
                params["attestation"] = self.attest(
                    pin=pin,
                    audience=started["audience"],
                    ns_challenge=ns_challenge,
                    purpose="login",
                    account=identity,
                )
            except RemoteError as exc:
                # The login page should say why nothing happens: a wrong PIN, or an app locked by them.
                if exc.code in ("locked", "wrong_pin"):
                    ns.request("login.cancel", {"reason": exc.code})
                raise
        statement = login_statement(
            payload.item_id, payload.secret, ns_challenge, ns.export(LOGIN_EXPORTER, b"", 32)
        )
        params["signature"] = b64(identity.sign(statement))
        if number is not None:
            params["number"] = number
        finished = ns.request("login.finish", params)
        return {**shown, "result": "logged_in", "session": finished.get("session")}

    def sign(
        self, payload: QRPayload, *, pin: str | None, approve: bool, account_id: str | None
    ) -> dict[str, Any]:
        """Show the typed fields, then sign exactly the canonical bytes ns fixed, with the decision."""
        candidates = self.accounts.accounts_at(payload.server_key_hash)
        if account_id is not None:
            candidates = [a for a in candidates if a.id == account_id]
        if not candidates:
            raise FlowError("This app has no account at this service.")
        last_error: Exception | None = None
        for record in candidates:
            identity = self.accounts.account_key(record)
            with self._channel(record.sigmai_uri, identity, record.server_key_hash) as ns:
                try:
                    started = ns.request(
                        "sign.start", {"transaction": payload.item_id, "challenge": b64(payload.secret)}
                    )
                except RemoteError as exc:
                    last_error = exc
                    if exc.code in ("not_yours", "unknown_account"):
                        continue
                    raise
                canonical = unb64(started["canonical"])
                if json.loads(canonical) != started["content"]:
                    raise FlowError("The server sent content that differs from what it asks to sign.")
                decision = "approved" if approve else "declined"
                ns_challenge = unb64(started["ns_challenge"])
                params: dict[str, Any] = {
                    "decision": decision,
                    "signature": b64(
                        identity.sign(evidence.signing_statement(canonical, ns_challenge, decision))
                    ),
                }
                if approve and started.get("second_factor") == "required":
                    params["attestation"] = self.attest(
                        pin=pin,
                        audience=started["audience"],
                        ns_challenge=ns_challenge,
                        purpose="sign",
                        account=identity,
                    )
                finished = ns.request("sign.finish", params)
            return {
                "action": "sign",
                "server": started["server"]["name"],
                "shown": started["content"]["fields"],
                "result": finished["status"],
                "transaction": finished["transaction"],
            }
        raise FlowError(f"No account of this app may sign this request ({last_error}).")

    # -- push: the inbox at the MC ----------------------------------------------------------------------

    def inbox(self) -> list[dict[str, Any]]:
        """Pull the mailbox and open every envelope this app can: each is checked against the server key
        pinned for its account, so a message the MC altered or a stranger sent is dropped."""
        with self._mc() as mc:
            fetched = mc.request("mailbox.fetch")
        items = []
        for message in fetched["messages"]:
            opened = self._open(fetched["mailbox"], message)
            if opened is not None:
                items.append(opened)
        return items

    def _open(self, mailbox: str, message: dict[str, Any]) -> dict[str, Any] | None:
        sender = bytes.fromhex(message["sender"]) if len(message.get("sender", "")) == 64 else b""
        for record in self.accounts.accounts_at(sender):
            key = self.accounts.encryption_key(record.id)
            if key is None:
                continue
            try:
                body = envelope.open_envelope(
                    unb64(message["envelope"]),
                    key,
                    self.accounts.server_public_key(record),
                    record.server_key_hash,
                    mailbox,
                )
            except envelope.EnvelopeError:
                continue
            opened = {"id": message["id"], "account": record.id, "userid": record.user_id, **body}
            if isinstance(body.get("context"), dict):
                opened["shows"] = context_lines(body["context"])
            return opened
        return None

    def approve(
        self, message_id: str, *, number: int | None, pin: str | None, decline: bool = False
    ) -> dict[str, Any]:
        for item in self.inbox():
            if item["id"] != message_id or item.get("type") not in ("login", "sign"):
                continue
            record = next(a for a in self.accounts.accounts() if a.id == item["account"])
            payload = QRPayload(
                kind=item["type"],
                server_id=item["server_id"],
                sigmai_uri=record.sigmai_uri,
                server_key_hash=record.server_key_hash,
                item_id=item["push"],
                secret=unb64(item["challenge"]),
            )
            if payload.kind == "sign":
                return self.sign(payload, pin=pin, approve=not decline, account_id=record.id)
            if number is None and not decline:
                raise FlowError("Pick the number the login page shows: --number N.")
            return self.login(payload, pin=pin, approve=not decline, account_id=record.id, number=number)
        raise FlowError("No such request in the inbox (it may have expired).")

    def logout(self, *, account_id: str | None = None) -> dict[str, Any]:
        ended = 0
        for record in self.accounts.accounts():
            if account_id is not None and record.id != account_id:
                continue
            identity = self.accounts.account_key(record)
            with self._channel(record.sigmai_uri, identity, record.server_key_hash) as ns:
                ended += int(ns.request("session.logout").get("ended", 0))
        return {"ended": ended}


def context_lines(context: dict[str, Any]) -> list[str]:
    """What a phone's screen says of who asks (ns checked each member: one line of plain text)."""
    asker = str(context.get("client_name") or "An application")
    lines = []
    if context.get("message"):
        lines.append(f"{asker} asks: {context['message']}")
    elif context.get("client_name"):
        lines.append(f"{asker} asks you to log in")
    if context.get("user_code"):
        lines.append(f"Code on the device: {context['user_code']}")
    return lines


__all__ = ["App", "FlowError", "StoreError", "context_lines"]

"""XML signatures through pysaml2 and the ``xmlsec1`` binary, with the IdP's SAML key.

``xmlsec1`` is started with ``posix_spawn``, not ``fork``: in the all-in-one process gRPC's fork handlers
abort a forked child now and then, and both pysaml2's and gevent's ``subprocess`` fork. Its output goes to
temporary files, so there are no pipes to drain.

``xmlsec1`` reads keys from files only. The key is written once per process into a private directory
(mode 0700, in /dev/shm when there is one, so it stays in memory), file mode 0600, and removed when the
process exits or the key is rotated away. Nothing here logs key material.
"""

import atexit
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from tempfile import NamedTemporaryFile
from typing import Any

from gevent import monkey
from saml2 import SamlBase
from saml2.config import Config
from saml2.sigver import CryptoBackendXmlSec1, SecurityContext, XmlsecError, security_context

from idp.i18n import N_
from idp.keys import LoadedKey
from idp.saml.errors import SamlError
from nextauth_core.secret_files import write_private

log = logging.getLogger("nextauth.idp.saml")


class _QuietSignatureFailures(logging.Filter):
    """pysaml2 logs every failed signature check at ERROR ("check_sig: ..." with xmlsec1's output, and the
    failed command's details from its own runner). A forged signature is the sender's problem, not the
    IdP's: the refusal is logged once at WARNING by the SAML error handler, naming the SP and the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (message.startswith("check_sig:") or message.startswith("returncode="))


logging.getLogger("saml2.sigver").addFilter(_QuietSignatureFailures())

XMLSEC_BINARY = shutil.which("xmlsec1") or "/usr/bin/xmlsec1"
XMLSEC_TIMEOUT = 30.0


# The originals: gevent's posix_spawn would hand the child to its SIGCHLD watcher, and a wait on that
# watcher never returns if the signal goes astray. Polling cannot hang.
_posix_spawn = monkey.get_original("os", "posix_spawn")
_waitpid = monkey.get_original("os", "waitpid")


def _wait(pid: int) -> int | None:
    """The exit status; None if something else reaped the child (gevent's watcher does, for any child)."""
    deadline = time.monotonic() + XMLSEC_TIMEOUT
    pause = 0.001
    while True:
        try:
            done, status = _waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise XmlsecError("xmlsec1 did not finish in time")
        time.sleep(pause)  # gevent's sleep under monkey-patching: the server keeps serving
        pause = min(pause * 2, 0.02)


def run_xmlsec1(arguments: list[str]) -> tuple[int | None, bytes, bytes]:
    """Exit status (None if unknown), stdout, stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = _posix_spawn(
            XMLSEC_BINARY,
            [XMLSEC_BINARY, *arguments],
            {"PATH": os.defpath},  # nothing of the IdP's environment (its secrets) reaches the child
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ],
        )
        code = _wait(pid)
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


_version_lock = threading.Lock()
_version: list[str] = []


class XmlSec1(CryptoBackendXmlSec1):  # type: ignore[misc]  # pysaml2 ships no types
    """pysaml2's xmlsec1 backend, with ``run_xmlsec1`` in place of its forking Popen."""

    @property
    def version(self) -> str:
        with _version_lock:
            if not _version:
                _code, out, _err = run_xmlsec1(["--version"])
                words = out.decode("ascii", "replace").split(" ")
                _version.append(words[1] if len(words) > 1 else "0.0.0")
            return _version[0]

    def _run_xmlsec(self, com_list: list[str], extra_args: list[str]) -> tuple[str, str, bytes]:
        with NamedTemporaryFile(suffix=".xml") as output:
            command = [*com_list[1:], "--output", output.name]
            if self.version_nums >= (1, 3):
                command.append("--lax-key-search")
            code, out, err = run_xmlsec1(command + list(extra_args))
            # Without an exit status, pysaml2's own checks decide: a signature needs output, a
            # verification needs xmlsec1's "OK".
            if code not in (0, None):
                # xmlsec1's stderr names the failed check; it holds no key material.
                raise XmlsecError(f"xmlsec1 exited with {code}: {err.decode(errors='replace')[-500:]}")
            output.seek(0)
            return out.decode(errors="replace"), err.decode(errors="replace"), output.read()


def _private_base() -> str | None:
    shm = Path("/dev/shm")  # noqa: S108 - a RAM-backed place for the key, with a private directory in it
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


class KeyFiles:
    """The current SAML key (and its certificate) as files for xmlsec1, one directory per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: dict[str, Path] = {}

    def paths(self, key: LoadedKey) -> tuple[str, str]:
        with self._lock:
            folder = self._dirs.get(key.kid)
            if folder is None or not folder.exists():
                folder = Path(tempfile.mkdtemp(prefix="nextauth-saml-", dir=_private_base()))
                write_private(folder / "key.pem", key.private_pem())
                write_private(folder / "cert.pem", (key.certificate or "").encode())
                # One key at a time: a rotated key's files go as soon as its successor is in use.
                for old in self._dirs.values():
                    shutil.rmtree(old, ignore_errors=True)
                self._dirs = {key.kid: folder}
            return str(folder / "key.pem"), str(folder / "cert.pem")

    def remove_all(self) -> None:
        with self._lock:
            for folder in self._dirs.values():
                shutil.rmtree(folder, ignore_errors=True)
            self._dirs = {}


KEY_FILES = KeyFiles()
atexit.register(KEY_FILES.remove_all)


def certificate_body(pem: str) -> str:
    """The base64 of a PEM certificate, as ds:X509Certificate carries it."""
    return "".join(line.strip() for line in pem.splitlines() if line and "-----" not in line)


class XmlSecurity:
    """Signs with the IdP's key; verifies enveloped signatures against one SP's metadata keys only."""

    def __init__(self, key: LoadedKey, sp_metadata_xml: str | None = None) -> None:
        if key.certificate is None:
            raise ValueError("the SAML key has no certificate")
        if not os.access(XMLSEC_BINARY, os.X_OK):
            raise SamlError(
                N_("SAML is not available on this IdP yet: its administrator must install xmlsec1."),
                status=503,
                detail=f"{XMLSEC_BINARY} not found",
            )
        key_file, cert_file = KEY_FILES.paths(key)
        settings: dict[str, Any] = {
            "entityid": "urn:nextauth:idp",  # unused: messages get their Issuer from the caller
            "xmlsec_binary": XMLSEC_BINARY,
            "key_file": key_file,
            "cert_file": cert_file,
            # Keys inside a message prove nothing; only the registered metadata's keys count.
            "only_use_keys_in_metadata": True,
            "delete_tmpfiles": True,
        }
        if sp_metadata_xml is not None:
            settings["metadata"] = {"inline": [sp_metadata_xml]}
        self.certificate = certificate_body(key.certificate)
        self._sec: SecurityContext = security_context(Config().load(settings))
        self._sec.crypto = XmlSec1(XMLSEC_BINARY, delete_tmpfiles=True)

    def sign(self, xml: str, node_name: str, node_id: str) -> str:
        """Fill in the ds:Signature template of the element ``node_id`` (a ``pre_signature_part``)."""
        return str(self._sec.sign_statement(xml, node_name=node_name, node_id=node_id))

    def verify(self, xml: str, msgtype: str) -> SamlBase:
        """The message if its enveloped signature verifies with the SP's metadata keys; raises otherwise."""
        return self._sec.correctly_signed_message(xml, msgtype, must=True)


_cache: dict[tuple[str, str], XmlSecurity] = {}
_cache_lock = threading.Lock()
CACHE_SIZE = 64


def for_key(key: LoadedKey, sp_metadata_xml: str | None = None) -> XmlSecurity:
    """A context per (key, SP metadata), kept: building one parses the metadata."""
    cache_key = (key.kid, hashlib.sha256(sp_metadata_xml.encode()).hexdigest() if sp_metadata_xml else "")
    with _cache_lock:
        found = _cache.get(cache_key)
    if found is not None:
        return found
    created = XmlSecurity(key, sp_metadata_xml)
    with _cache_lock:
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        _cache[cache_key] = created
    return created

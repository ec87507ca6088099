"""Shibboleth SP 3 (Debian's ``shibd`` and ``libapache2-mod-shib``) behind a real Apache on loopback, for
interop tests of the IdP: a SAML implementation that is not ours, and stricter than python3-saml.

Everything lives in one temporary directory: Apache's and shibd's configuration, the SP's key, the IdP's
metadata, the logs, the sockets. Apache listens on a free port. The protected paths ``/secure/`` and
``/transient/`` (whose login asks for a transient NameID) run a CGI script that prints the environment
mod_shib hands it (the attributes among it), one ``name=value`` per line.

Apache will not serve as root, so when the tests run as root both daemons run as ``www-data``, and the
directory is theirs.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.fixtures.system import free_port
from tests.saml_sp import key_and_certificate

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
SHIBD = shutil.which("shibd") or "/usr/sbin/shibd"
MODULES = Path("/usr/lib/apache2/modules")
SHIB_MODULE = MODULES / "mod_shib.so"
SHIB_SHARE = Path("/etc/shibboleth")  # the packaged schema-backed defaults we point at, never change
UNPRIVILEGED = "www-data"


def available() -> str | None:
    """Why Shibboleth SP cannot run here, or None if it can."""
    for path, package in (
        (APACHE, "apache2"),
        (SHIBD, "shibboleth-sp-utils"),
        (SHIB_MODULE, "libapache2-mod-shib"),
    ):
        if not Path(path).exists():
            return f"{path} is missing (Debian package {package}; .ci/run installs it)"
    return None


def _pem(base64_der: str, label: str) -> str:
    lines = [base64_der[i : i + 64] for i in range(0, len(base64_der), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


SHIBBOLETH2 = """<SPConfig xmlns="urn:mace:shibboleth:3.0:native:sp:config"
    xmlns:conf="urn:mace:shibboleth:3.0:native:sp:config" clockSkew="60">
  <OutOfProcess logger="{dir}/shibd.logger"/>
  <InProcess logger="{dir}/native.logger"/>
  <UnixListener address="{dir}/shibd.sock"/>
  <StorageService type="Memory" id="mem" cleanupInterval="900"/>
  <SessionCache type="StorageService" StorageService="mem" cacheAssertions="false"
                cacheAllowance="900" inprocTimeout="900" cleanupInterval="900"/>
  <ReplayCache StorageService="mem"/>
  <RequestMapper type="Native">
    <RequestMap>
      <Host name="127.0.0.1" port="{port}" scheme="http">
        <Path name="secure" authType="shibboleth" requireSession="true"/>
      </Host>
    </RequestMap>
  </RequestMapper>
  <ApplicationDefaults entityID="{entity_id}" REMOTE_USER="uid persistent-id transient-id"
                       signing="front" encryption="false">
    <Sessions lifetime="28800" timeout="3600" relayState="ss:mem" checkAddress="false"
              redirectLimit="exact" handlerSSL="false" cookieProps="; path=/; HttpOnly">
      <SSO entityID="{idp_entity_id}">SAML2</SSO>
      <Logout>Local</Logout>
      <Handler type="MetadataGenerator" Location="/Metadata" signing="false"/>
      <Handler type="Status" Location="/Status" acl="127.0.0.1 ::1"/>
      <Handler type="Session" Location="/Session" showAttributeValues="true"/>
    </Sessions>
    <Errors supportContact="root@localhost" showErrorDetails="true"
            styleSheet="/shibboleth-sp/main.css"
            session="{share}/sessionError.html" metadata="{share}/metadataError.html"
            ssl="{share}/sslError.html"
            localLogout="{share}/localLogout.html" globalLogout="{share}/globalLogout.html"
            partialLogout="{share}/partialLogout.html"/>
    <MetadataProvider type="XML" validate="true" path="{dir}/idp-metadata.xml"/>
    <AttributeExtractor type="XML" validate="true" reloadChanges="false" path="{dir}/attribute-map.xml"/>
    <CredentialResolver type="File" key="{dir}/sp-key.pem" certificate="{dir}/sp-cert.pem"/>
  </ApplicationDefaults>
  <SecurityPolicyProvider type="XML" validate="true" path="{share}/security-policy.xml"/>
  <ProtocolProvider type="XML" validate="true" reloadChanges="false" path="{share}/protocols.xml"/>
</SPConfig>
"""

# The IdP's attributes by their urn:oid names (as attributes.CATALOGUE sends them), and the NameIDs.
ATTRIBUTE_MAP = """<Attributes xmlns="urn:mace:shibboleth:2.0:attribute-map"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Attribute name="urn:oid:0.9.2342.19200300.100.1.1" id="uid"/>
  <Attribute name="urn:oid:2.16.840.1.113730.3.1.241" id="displayName"/>
  <Attribute name="urn:oid:0.9.2342.19200300.100.1.3" id="mail"/>
  <Attribute name="urn:oid:1.3.6.1.4.1.5923.1.5.1.1" id="isMemberOf"/>
  <Attribute name="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" id="persistent-id">
    <AttributeDecoder xsi:type="NameIDAttributeDecoder" formatter="$Name" defaultQualifiers="true"/>
  </Attribute>
  <Attribute name="urn:oasis:names:tc:SAML:2.0:nameid-format:transient" id="transient-id">
    <AttributeDecoder xsi:type="NameIDAttributeDecoder" formatter="$Name" defaultQualifiers="true"/>
  </Attribute>
  <Attribute name="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" id="email-id">
    <AttributeDecoder xsi:type="NameIDAttributeDecoder" formatter="$Name" defaultQualifiers="true"/>
  </Attribute>
</Attributes>
"""

LOGGER = """log4j.rootCategory={level}, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.fileName={path}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{{%H:%M:%S}} %p %c %x: %m%n
"""

APACHE_CONF = """ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{dir}/apache.pid"
DefaultRuntimeDir "{dir}"
Mutex file:{dir} default
ErrorLog "{dir}/apache-error.log"
LogLevel info
LoadModule mpm_prefork_module {modules}/mod_mpm_prefork.so
LoadModule authn_core_module {modules}/mod_authn_core.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule mime_module {modules}/mod_mime.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule cgi_module {modules}/mod_cgi.so
LoadModule mod_shib {shib_module}
TypesConfig /etc/mime.types
StartServers 1
MinSpareServers 1
MaxSpareServers 2
MaxRequestWorkers 8
ShibConfig "{dir}/shibboleth2.xml"
ShibCompatValidUser Off
DocumentRoot "{dir}/htdocs"
<Location /Shibboleth.sso>
  SetHandler shib
</Location>
ScriptAlias /secure/ "{dir}/cgi/"
<Location /secure/>
  AuthType shibboleth
  ShibRequestSetting requireSession 1
  Require shib-session
</Location>
# The same page behind a login that asks for a transient NameID (NameIDPolicy Format), as some Apache SP
# modules always do.
ScriptAlias /transient/ "{dir}/cgi/"
<Location /transient/>
  AuthType shibboleth
  ShibRequestSetting requireSession 1
  ShibRequestSetting NameIDFormat urn:oasis:names:tc:SAML:2.0:nameid-format:transient
  Require shib-session
</Location>
"""

# The whole environment: Apache renames what it cannot pass to a CGI (Shib-Session-ID -> Shib_Session_ID).
CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
env | sort
"""


class ShibbolethSP:
    """A running Shibboleth SP: ``url("/secure/")`` is the protected page."""

    def __init__(self, idp_metadata: str, idp_entity_id: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nextauth-shib-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.entity_id = f"{self.base}/shibboleth"
        self.processes: list[subprocess.Popen[bytes]] = []
        key, certificate = key_and_certificate("shibboleth-sp")
        files = {
            "shibboleth2.xml": SHIBBOLETH2.format(
                dir=self.dir,
                port=self.port,
                entity_id=self.entity_id,
                idp_entity_id=idp_entity_id,
                share=SHIB_SHARE,
            ),
            "attribute-map.xml": ATTRIBUTE_MAP,
            "idp-metadata.xml": idp_metadata,
            "sp-key.pem": _pem(key, "PRIVATE KEY"),
            "sp-cert.pem": _pem(certificate, "CERTIFICATE"),
            "shibd.logger": LOGGER.format(level="INFO", path=self.dir / "shibd.log"),
            "native.logger": LOGGER.format(level="INFO", path=self.dir / "native.log"),
            "apache.conf": APACHE_CONF.format(
                dir=self.dir, port=self.port, modules=MODULES, shib_module=SHIB_MODULE
            ),
        }
        for name, text in files.items():
            (self.dir / name).write_text(text, encoding="utf-8")
        (self.dir / "htdocs").mkdir()
        (self.dir / "cgi").mkdir()
        script = self.dir / "cgi" / "attributes"
        script.write_text(CGI, encoding="utf-8")
        script.chmod(0o755)
        self._hand_over()

    def _hand_over(self) -> None:
        if os.geteuid() != 0:
            return
        account = pwd.getpwnam(UNPRIVILEGED)
        for path in [self.dir, *self.dir.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _command(self, *args: str) -> list[str]:
        if os.geteuid() != 0:
            return list(args)
        return ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", *args]

    def url(self, path: str) -> str:
        return self.base + path

    def _spawn(self, command: list[str], output: str) -> None:
        # A session of its own: stop() ends the daemon and its children (Apache's workers) by group.
        with (self.dir / output).open("wb") as log:
            self.processes.append(
                subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "LANG": "C"},
                    start_new_session=True,
                )
            )

    def start(self, timeout: float = 30.0) -> None:
        shibd = self._command(
            SHIBD, "-F", "-f", "-c", str(self.dir / "shibboleth2.xml"), "-p", str(self.dir / "shibd.pid")
        )
        self._spawn(shibd, "shibd.out")
        deadline = time.monotonic() + timeout
        while not (self.dir / "shibd.sock").exists():
            self._check_running("shibd")
            if time.monotonic() > deadline:
                raise AssertionError("shibd did not open its socket\n" + self.log())
            time.sleep(0.1)
        apache = self._command(APACHE, "-f", str(self.dir / "apache.conf"), "-DFOREGROUND")
        self._spawn(apache, "apache.out")
        while True:
            self._check_running("apache2")
            try:
                if httpx.get(self.url("/Shibboleth.sso/Status"), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("Apache with mod_shib did not answer\n" + self.log())
            time.sleep(0.1)

    def _check_running(self, name: str) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}\n" + self.log())

    def metadata(self) -> str:
        """The SP's own metadata, as its MetadataGenerator publishes it."""
        response = httpx.get(self.url("/Shibboleth.sso/Metadata"), timeout=10)
        assert response.status_code == 200, response.text[:500]
        return response.text

    def log(self) -> str:
        parts = []
        for name in ("shibd.out", "shibd.log", "native.log", "apache.out", "apache-error.log"):
            path = self.dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running(idp_metadata: str, idp_entity_id: str) -> Iterator[ShibbolethSP]:
    sp = ShibbolethSP(idp_metadata, idp_entity_id)
    try:
        sp.start()
        yield sp
    finally:
        sp.stop()

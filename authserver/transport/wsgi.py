"""gevent's WSGI handler, plus the one thing it does not pass on: the TLS client certificate.

The REST APIs grant access by a client certificate listed in the database (TLS peer verification), so
the application needs the certificate's fingerprint; the handler puts it in the WSGI environment.
"""

import hashlib
from typing import Any

from gevent.pywsgi import WSGIHandler

CLIENT_CERT_KEY = "nextauth.client_cert_sha256"


class PeerCertificateHandler(WSGIHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        getpeercert = getattr(self.socket, "getpeercert", None)
        if getpeercert is not None:
            der = getpeercert(binary_form=True)
            if der:
                environ[CLIENT_CERT_KEY] = hashlib.sha256(der).hexdigest()
        return environ

"""SAML identifiers the IdP speaks, in one place."""

BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"

NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

# The operator's word for a format (``nextauth saml-sp add --name-id-format``) -> its URI.
NAMEID_FORMATS = {"persistent": NAMEID_PERSISTENT, "transient": NAMEID_TRANSIENT, "email": NAMEID_EMAIL}

# Signatures the IdP makes. SHA-1 is neither made nor accepted (see ``bindings.SIGNATURE_ALGORITHMS``).
SIGN_ALG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_ALG = "http://www.w3.org/2001/04/xmlenc#sha256"

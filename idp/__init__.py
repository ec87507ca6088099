"""The nextAuth IdP (OIDC, SAML, QR login pages). Built in a later issue."""

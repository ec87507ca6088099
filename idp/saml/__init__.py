"""The IdP's SAML 2.0 front-end: Web Browser SSO and Single Logout for registered service providers.

pysaml2 supplies the SAML object model and XML signatures (through the ``xmlsec1`` binary); the rules an
IdP must enforce (who may ask, where answers may go, what is released) live in the modules here:

- ``spmetadata``: reading an SP's metadata (endpoints, keys, whether it signs).
- ``registry``: the registered SPs (``nextauth saml-sp``) and their release settings.
- ``bindings``: HTTP-Redirect and HTTP-POST encoding, query-string signatures.
- ``inbound``: checks every request from an SP passes (signature, destination, age, replay).
- ``sso`` and ``assertion``: answering an AuthnRequest with a signed (optionally encrypted) assertion.
- ``slo``: single logout, SP- and IdP-initiated.
- ``endpoints``: the Flask blueprint.

The integrator's guide is docs/saml.md.
"""

"""The IdP's OpenID Connect provider, built on Authlib: one module per concern, the Flask glue apart.

- ``clients``: registered clients and their metadata (RFC 7591 names);
- ``tokens``: authorization codes and access tokens in the shared store, refresh tokens in the database;
- ``grants``: Authlib grant classes (code + PKCE, refresh with rotation, client credentials) and the
  OpenID Connect extension that signs ID tokens;
- ``provider``: the Authlib authorization server with its endpoints (introspection, revocation, userinfo,
  end session);
- ``client_keys``, ``client_auth``: clients' public keys (jwks, jwks_uri) and JWT client authentication
  (private_key_jwt, client_secret_jwt);
- ``jar``, ``par``: signed request objects and pushed authorization requests;
- ``dpop``: DPoP proofs and nonces (sender-constrained tokens);
- ``backchannel``: logout tokens sent to clients when an IdP session ends;
- ``response_modes``: ``iss`` in authorization responses (RFC 9207), query, fragment and form post;
- ``cors``: which web origins may read the token, userinfo and revocation answers;
- ``pairwise`` and ``jwt_access_token``: pairwise subjects, JWT access tokens (RFC 9068);
- ``endpoints``: the Flask blueprint (discovery, JWKS, authorize with consent, token, userinfo, logout).
"""

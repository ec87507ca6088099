// A minimal single-page OpenID Connect client for the tests: authorization code + PKCE (S256) entirely in
// the browser, then fetch() to the token and userinfo endpoints on the IdP's origin (which CORS must allow).
"use strict";

function b64url(bytes) {
  return btoa(String.fromCharCode.apply(null, new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

function show(id, value) {
  var out = document.getElementById("status");
  out.id = id;
  out.textContent = typeof value === "string" ? value : JSON.stringify(value);
}

async function start(params) {
  var config = {issuer: params.get("issuer"), client_id: params.get("client_id")};
  var discovery = await (await fetch(config.issuer + "/.well-known/openid-configuration")).json();
  var verifier = random(48);
  var challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  var state = random(16);
  var nonce = random(16);
  var redirect = location.origin + location.pathname;
  sessionStorage.setItem("spa", JSON.stringify({
    config: config, discovery: discovery, verifier: verifier, state: state, nonce: nonce, redirect: redirect
  }));
  var query = new URLSearchParams({
    response_type: "code", client_id: config.client_id, redirect_uri: redirect, scope: "openid profile",
    state: state, nonce: nonce, code_challenge: challenge, code_challenge_method: "S256"
  });
  location.assign(discovery.authorization_endpoint + "?" + query.toString());
}

async function finish(params) {
  var saved = JSON.parse(sessionStorage.getItem("spa"));
  sessionStorage.removeItem("spa");
  if (!saved || params.get("state") !== saved.state) {
    throw new Error("state mismatch");
  }
  if (params.get("iss") !== saved.discovery.issuer) {  // RFC 9207
    throw new Error("issuer mismatch");
  }
  var answer = await fetch(saved.discovery.token_endpoint, {
    method: "POST",
    headers: {"Content-Type": "application/x-www-form-urlencoded"},
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), redirect_uri: saved.redirect,
      client_id: saved.config.client_id, code_verifier: saved.verifier
    })
  });
  var tokens = await answer.json();
  if (!answer.ok) {
    throw new Error("token endpoint: " + JSON.stringify(tokens));
  }
  var claims = JSON.parse(atob(tokens.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  if (claims.nonce !== saved.nonce) {
    throw new Error("nonce mismatch");
  }
  var info = await fetch(saved.discovery.userinfo_endpoint, {
    headers: {"Authorization": "Bearer " + tokens.access_token}
  });
  var user = await info.json();
  history.replaceState(null, "", saved.redirect);  // the code leaves the address bar
  show("result", {
    sub: user.sub, name: user.name, id_token_sub: claims.sub, access_token: tokens.access_token,
    refresh_token: tokens.refresh_token || null, token_type: tokens.token_type
  });
}

(async function () {
  var params = new URLSearchParams(location.search);
  try {
    if (params.get("code") || params.get("error")) {
      if (params.get("error")) {
        throw new Error("authorization: " + params.get("error"));
      }
      await finish(params);
    } else if (params.get("issuer")) {
      await start(params);
    } else {
      show("idle", "idle");
    }
  } catch (error) {
    show("error", String(error));
  }
})();

// OAuth 2.0 Form Post Response Mode: post the authorization response to the application without a click.
// The page's Continue button does the same for browsers that run no scripts; the IdP's CSP allows only
// scripts from its own origin, hence this file instead of an inline script.
"use strict";
(function () {
  var form = document.getElementById("oidc-form-post");
  if (form) {
    form.submit();
  }
})();

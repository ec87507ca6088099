// SAML HTTP-POST binding: pass the message on without a click. The page's Continue button does the same
// for browsers that run no scripts (the IdP's CSP allows only scripts from its own origin, hence this file).
"use strict";
(function () {
  var form = document.getElementById("saml-post");
  if (form) {
    form.submit();
  }
})();

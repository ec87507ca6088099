// Single logout: wait until every application answered (the hidden frames and the IdP's own back-channel
// calls), or the IdP's timeout passed, then show the result. Without scripts the page's Refresh header
// does the same after the timeout.
"use strict";
(function () {
  // In a frame of the logout page: on to the SP with its signed LogoutRequest (HTTP-Redirect binding).
  var onward = document.getElementById("saml-redirect");
  if (onward) {
    window.location.replace(onward.getAttribute("href"));
    return;
  }
  var progress = document.getElementById("logout-progress");
  if (!progress) {
    return;
  }
  var statusUrl = progress.getAttribute("data-status");
  var doneUrl = progress.getAttribute("data-done");
  var finish = function () {
    window.location.replace(doneUrl);
  };
  var poll = function () {
    fetch(statusUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        return answer.ok ? answer.json() : { finished: true };
      })
      .then(function (state) {
        if (state.finished) {
          finish();
        } else {
          window.setTimeout(poll, 400);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 1000);
      });
  };
  window.setTimeout(poll, 300);
})();

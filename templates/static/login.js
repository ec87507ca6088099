// The login page: waits on ns's browser WebSocket for news about this session, keeps the QR fresh,
// and hands over to the IdP as soon as ns says the session is logged in. No framework, no build step.
(function () {
  "use strict";
  var root = document.getElementById("login");
  var status = document.getElementById("status");
  var form = document.getElementById("complete");
  var figure = document.getElementById("qr");
  var done = false;
  // Why a login did not happen, as ns tells the page ("CANCEL <reason>").
  var CANCELLED = {
    declined: "The login was declined on the phone. Scan again to retry.",
    wrong_number: "The number picked on the phone was not the one shown here. Try again.",
    wrong_pin: "Wrong PIN on the phone. Scan again to retry.",
    locked: "The app on your phone is locked after too many wrong PINs. Set it up again in the app, then scan again.",
    blocked: "This account is blocked. Contact your support desk.",
    second_factor: "The PIN or fingerprint check was not accepted. Scan again to retry.",
    second_factor_device_mismatch: "The PIN was checked by another installation of the app than the one enrolled for this account. Use the enrolled phone, or enrol this one.",
    reenrol_required: "This account must be enrolled again before it can log in with a PIN. Ask for a new enrolment code."
  };
  var retries = 0;

  function say(text, kind) {
    status.textContent = text;
    status.className = "status" + (kind ? " " + kind : "");
  }

  function finish() {
    if (done) { return; }
    done = true;
    say("Confirmed. Logging you in…", "ok");
    form.submit();
  }

  function refresh() {
    if (done) { return; }
    fetch(root.getAttribute("data-qr-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (state) {
        if (state.loggedin) { finish(); return; }
        figure.innerHTML = state.svg;
        figure.setAttribute("data-qrdata", state.qrdata);
        document.getElementById("qr-text").textContent = state.qrdata;
        var inApp = document.getElementById("open-in-app");
        if (inApp) { inApp.setAttribute("href", inApp.getAttribute("href").split("#")[0] + "#login=" + state.qrdata); }
      })
      .catch(function () {
        say("This code has expired and could not be renewed. Reload the page.", "error");
      });
  }

  function connect() {
    var socket = new WebSocket(root.getAttribute("data-ws"));
    socket.onopen = function () {
      retries = 0;
      socket.send("REGISTER " + root.getAttribute("data-hsid") + " " + root.getAttribute("data-server"));
    };
    socket.onmessage = function (event) {
      var word = String(event.data).split(" ")[0];
      if (word === "LOGIN") { finish(); }
      else if (word === "CONFIRMSCAN") { say("Code scanned. Confirm on your phone."); }
      else if (word === "CONFIRMPROVOKE") { say("Check your phone to confirm."); }
      else if (word === "CANCEL") { say(CANCELLED[String(event.data).split(" ")[1]] || CANCELLED.declined, "error"); refresh(); }
      else if (word === "LOGOUT") { say("You were logged out."); }
    };
    socket.onclose = function () {
      if (done) { return; }
      retries += 1;
      if (retries > 5) { say("Lost the connection to the login service. Reload the page.", "error"); return; }
      setTimeout(connect, Math.min(1000 * retries, 5000));
    };
  }

  // Push: ask the IdP to send a request to the user's phones; show the number to pick there.
  var pushForm = document.getElementById("push");
  var pushStatus = document.getElementById("push-status");
  var pushNumber = document.getElementById("push-number");
  pushForm.addEventListener("submit", function (event) {
    event.preventDefault();
    pushStatus.textContent = "Sending…";
    pushStatus.className = "status";
    fetch(pushForm.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(pushForm)),
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        pushStatus.textContent = answer.message;
        pushStatus.className = "status" + (answer.kind ? " " + answer.kind : "");
        if (answer.number) {
          pushNumber.textContent = String(answer.number);
          pushNumber.hidden = false;
        } else {
          pushNumber.hidden = true;
        }
      })
      .catch(function () {
        pushStatus.textContent = "The request could not be sent. Scan the code instead.";
        pushStatus.className = "status error";
      });
  });

  connect();
  // Codes live for a minute: renew well before, so a slow scan still works.
  setInterval(refresh, 40000);
}());

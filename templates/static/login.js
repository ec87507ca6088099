// The login page: waits on ns's browser WebSocket for news about this session, keeps the QR fresh,
// and hands over to the IdP as soon as ns says the session is logged in. No framework, no build step.
// Its texts come from the page (a JSON block in the page's language), not from this file.
(function () {
  "use strict";
  var root = document.getElementById("login");
  var status = document.getElementById("status");
  var form = document.getElementById("complete");
  var figure = document.getElementById("qr");
  var expiry = document.getElementById("expiry");
  var TEXT = JSON.parse(document.getElementById("login-texts").textContent);
  var done = false;
  var retries = 0;
  // The shown code's end and the moment ns hands out a new one, on this page's clock (ns tells seconds
  // left, so the two machines' clocks never meet).
  var expiresAt = 0;
  var renewTimer = null;
  var renewFailures = 0;
  var outage = false;

  function say(text, kind) {
    status.textContent = text;
    status.className = "status" + (kind ? " " + kind : "");
  }

  function finish() {
    if (done) { return; }
    done = true;
    say(TEXT.confirmed, "ok");
    form.submit();
  }

  function schedule(expiresIn, renewIn) {
    expiresAt = Date.now() + expiresIn * 1000;
    if (renewTimer !== null) { clearTimeout(renewTimer); }
    // Half a second after ns starts handing out a new code, which still leaves the old one seconds to live.
    renewTimer = setTimeout(refresh, Math.max(renewIn, 0) * 1000 + 500);
    tick();
  }

  function tick() {
    if (done) { return; }
    var left = Math.floor((expiresAt - Date.now()) / 1000);
    if (left <= 0) {
      // Never a dead code on screen: the picture and its text go until a live one arrives.
      figure.classList.add("expired");
      figure.hidden = true;
      document.getElementById("qr-text").textContent = "";
      expiry.textContent = TEXT.expired;
      expiry.className = "status error";
      return;
    }
    expiry.textContent = TEXT.valid_for.replace("{seconds}", String(left));
    expiry.className = "fine";
  }

  function show(state) {
    figure.innerHTML = state.svg;
    figure.setAttribute("data-qrdata", state.qrdata);
    figure.hidden = false;
    figure.classList.remove("expired");
    document.getElementById("qr-text").textContent = state.qrdata;
    schedule(state.expires_in, state.renew_in);
  }

  function refresh() {
    if (done) { return; }
    fetch(root.getAttribute("data-qr-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (state) {
        if (renewFailures > 0 || outage) { outage = false; say(TEXT.waiting); }
        renewFailures = 0;
        if (state.loggedin) { finish(); return; }
        show(state);
      })
      .catch(function () {
        // The IdP or ns is away: keep asking, less and less often, and say so once the code is gone.
        renewFailures += 1;
        if (expiresAt <= Date.now()) { say(TEXT.renew_failed, "error"); }
        renewTimer = setTimeout(refresh, backoff(renewFailures));
      });
  }

  // 1, 2, 4, 8, 16, then every 30 seconds, with a little jitter so pages that lost the same server do
  // not all come back at the same instant.
  function backoff(failures) {
    return Math.min(1000 * Math.pow(2, failures - 1), 30000) * (0.8 + Math.random() * 0.4);
  }

  function connect() {
    var socket = new WebSocket(root.getAttribute("data-ws"));
    socket.onopen = function () {
      var wasAway = retries > 0;
      retries = 0;
      socket.send("REGISTER " + root.getAttribute("data-hsid") + " " + root.getAttribute("data-server"));
      if (wasAway) { refresh(); }
    };
    socket.onmessage = function (event) {
      var parts = String(event.data).split(" ");
      var word = parts[0];
      if (word === "LOGIN") { finish(); }
      else if (word === "CONFIRMSCAN") { say(TEXT.scanned); }
      else if (word === "CONFIRMPROVOKE") { say(TEXT.check_phone); }
      else if (word === "CANCEL" && parts[1] === "expired") { say(TEXT.expired_scan, "error"); refresh(); }
      else if (word === "CANCEL") { say(TEXT[parts[1]] || TEXT.declined, "error"); refresh(); }
      else if (word === "LOGOUT") { say(TEXT.logged_out); }
    };
    socket.onclose = function () {
      if (done) { return; }
      // Never give up: after an outage of ns the page comes back by itself, with a fresh code and
      // whatever happened meanwhile (a login approved while the socket was down is found by refresh).
      retries += 1;
      if (retries > 1) { outage = true; say(TEXT.reconnecting, "error"); }
      setTimeout(connect, backoff(retries));
    };
  }

  // Push: ask the IdP to send a request to the user's phones; show the number to pick there.
  var pushForm = document.getElementById("push");
  var pushStatus = document.getElementById("push-status");
  var pushNumber = document.getElementById("push-number");
  pushForm.addEventListener("submit", function (event) {
    event.preventDefault();
    pushStatus.textContent = TEXT.sending;
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
        pushStatus.textContent = TEXT.push_failed;
        pushStatus.className = "status error";
      });
  });

  connect();
  schedule(parseFloat(root.getAttribute("data-expires-in")), parseFloat(root.getAttribute("data-renew-in")));
  setInterval(tick, 1000);
}());

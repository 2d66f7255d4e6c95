// The console's only script: live event rows and confirmations. Pages work without it
// (a reload shows new events; forms post unconfirmed).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  });
  var live = document.querySelector("[data-live]");
  if (!live) return;
  var status = document.getElementById("live-status");
  function poll() {
    fetch(live.getAttribute("data-live"), { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (live.innerHTML !== html) live.innerHTML = html;
        if (status) status.textContent = "live: updated " + new Date().toLocaleTimeString();
      })
      .catch(function (err) {
        if (status) status.textContent = "live updates paused (" + err.message + ")";
      })
      .finally(function () { setTimeout(poll, 1500); });
  }
  setTimeout(poll, 1500);
});

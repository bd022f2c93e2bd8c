// Retouch front-end glue. No inline scripts: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  // Show 4xx answers (a readable error fragment) in the flash area instead of dropping them.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr.status;
    if (status >= 400) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
      evt.detail.target = document.getElementById("flash");
      evt.detail.swapOverride = "innerHTML";
    }
  });
  document.addEventListener("htmx:sendError", function () {
    var flash = document.getElementById("flash");
    if (flash) flash.textContent = "The server cannot be reached. Check your connection and try again.";
  });

  // Clear the composer after a successful send, and the flash after any success.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!evt.detail.successful || evt.detail.xhr.status >= 400) return;
    var flash = document.getElementById("flash");
    if (flash) flash.textContent = "";
    if (elt && elt.id === "composer") elt.reset();
  });

  // Enter sends, Shift+Enter adds a line.
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (t && t.id === "instruction" && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (t.value.trim()) t.form.requestSubmit();
    }
  });

  // Elapsed time on pending turns.
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(since)) el.textContent = Math.max(0, Math.round((now - since) / 1000)) + " s";
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:afterSettle", tick);
  document.addEventListener("DOMContentLoaded", tick);

  // Select the share link on focus, for easy copying.
  document.addEventListener("focusin", function (evt) {
    if (evt.target && evt.target.classList && evt.target.classList.contains("share-url")) evt.target.select();
  });
})();

// Retouch front-end glue. No inline scripts: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  function flash(text) {
    var el = document.getElementById("flash");
    if (el) el.textContent = text;
  }

  // 4xx answers carry a readable message: swap them in (the server sets HX-Retarget
  // to the flash area for error fragments; a form answering 422 re-renders itself).
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr.status;
    if (status >= 400 && status < 500) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });
  document.addEventListener("htmx:responseError", function (evt) {
    if (evt.detail.xhr.status >= 500) flash("Something went wrong on the server. Please try again.");
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The server cannot be reached. Check your connection and try again.");
  });

  // Open the share panel after creating or revoking a link (/t/ID#share).
  document.addEventListener("DOMContentLoaded", function () {
    if (location.hash === "#share") {
      var share = document.getElementById("share");
      if (share) share.open = true;
    }
  });

  // After a form succeeds: clear the flash, and the composer after a send.
  // (Polling requests leave the flash alone, so an error stays readable.)
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!evt.detail.successful || evt.detail.xhr.status >= 400) return;
    if (!elt || elt.tagName !== "FORM") return;
    flash("");
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

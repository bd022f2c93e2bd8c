// Errors about a send, shown next to the composer (#composer-alert, role="alert") where the person
// is looking, not in the flash area at the top of the page. A message stays until it is dismissed
// (×) or the next send. The server's 4xx answers to the composer's post are retargeted into
// #composer-alert-text (app/pages.py error_page); this file shows them, and writes its own for an
// empty instruction, an offline send and a server error. The typed text is never cleared here:
// static/app.js clears the composer only after the server accepted the turn.
(function () {
  "use strict";

  var OFFLINE = "You are offline; nothing was sent. Your message is kept: send it again when you are back online.";
  var UNREACHABLE = "The server cannot be reached; nothing was sent. Your message is kept: try again in a moment.";
  var SERVER_ERROR = "Something went wrong on the server; your message is kept. Please try again.";
  var EMPTY = "Type an instruction first, then press Enter.";

  function parts() {
    return { box: document.getElementById("composer-alert"), text: document.getElementById("composer-alert-text") };
  }
  function isComposer(elt) { return !!elt && elt.id === "composer"; }
  // Whether an htmx event belongs to the composer's request (some events name the target as elt).
  function fromComposer(evt) {
    var config = evt.detail.requestConfig;
    return isComposer(evt.detail.elt) || isComposer(config && config.elt);
  }

  // Show `message` (plain text) next to the composer. Returns false on pages without a composer.
  function show(message) {
    var p = parts();
    if (!p.box || !p.text) return false;
    p.text.textContent = "";
    var para = document.createElement("p");
    para.textContent = message;
    p.text.appendChild(para);
    p.box.hidden = false;
    return true;
  }

  // Hide the message and forget it.
  function reset() {
    var p = parts();
    if (!p.box || !p.text) return;
    p.box.hidden = true;
    p.text.textContent = "";
  }

  // An Enter on an empty composer, or the Send button's required-field check.
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (t && t.id === "instruction" && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing && !t.value.trim()) {
      show(EMPTY);
    }
  });
  document.addEventListener("invalid", function (evt) {
    if (evt.target && evt.target.id === "instruction") {
      evt.preventDefault(); // our message instead of the browser's bubble
      show(EMPTY);
      evt.target.focus();
    }
  }, true);

  // A new send clears the last message; offline, nothing is sent at all.
  document.addEventListener("htmx:confirm", function (evt) {
    if (!isComposer(evt.detail.elt)) return;
    if (navigator.onLine === false) {
      evt.preventDefault();
      show(OFFLINE);
      return;
    }
    reset();
  });
  document.addEventListener("htmx:sendError", function (evt) {
    if (fromComposer(evt)) show(navigator.onLine === false ? OFFLINE : UNREACHABLE);
  });
  document.addEventListener("htmx:responseError", function (evt) {
    if (fromComposer(evt) && evt.detail.xhr.status >= 500) show(SERVER_ERROR);
  });
  // A 4xx the app did not retarget (the request-size limits answer before the app, with a bare page):
  // its message goes next to the composer too, never over the conversation.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    if (!fromComposer(evt) || xhr.status < 400 || xhr.status >= 500 || xhr.getResponseHeader("HX-Retarget")) return;
    evt.detail.shouldSwap = false;
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var para = doc.querySelector("p");
    var text = ((para || doc.body || {}).textContent || "").trim();
    show(text || "The server refused this message (error " + xhr.status + "). Your message is kept.");
  });
  // The server's own message, swapped into #composer-alert-text.
  document.addEventListener("htmx:afterSwap", function (evt) {
    var p = parts();
    if (p.text && evt.detail.target === p.text && p.text.textContent.trim()) p.box.hidden = false;
  });

  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("#composer-alert-close") : null;
    if (!t) return;
    reset();
    var box = document.getElementById("instruction");
    if (box) box.focus();
  });

  // A page swapped in by navigation starts without a message.
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "content") reset();
  });

  window.Retouch = window.Retouch || {};
  window.Retouch.composerAlerts = { show: show, reset: reset };
})();

// The composer (templates/thread.html #composer): Enter sends and Shift+Enter adds a line, the message
// box grows with its text, a "Sending…" bubble shows until the server answers, and the head-dependent
// bits the server renders with every live update (#composer-state, templates/_composer_state.html)
// are applied: "Select region" needs an image, the placeholder says whether the next turn creates or
// changes one, and an open painter follows a new head.
//
// After a send succeeds, reset() clears the composer and every component that fills it: the form's
// fields, the attachments (static/attachments.js), the painter (static/painter.js) and the pickers
// (static/pickers.js), each through its own reset().
(function () {
  "use strict";

  var MAX_HEIGHT = 240;  // px the message box grows to before it scrolls (a layout choice, not a limit)

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function component(name) { return window.Retouch && window.Retouch[name]; }

  function autogrow(el) {
    if (!el) return;
    el.style.height = "auto";
    el.style.height = Math.min(el.scrollHeight + 2, MAX_HEIGHT) + "px";
  }

  // The composer as it was on arrival, with every component that fills it cleared.
  function reset() {
    var form = $("#composer");
    if (form) form.reset();
    ["attachments", "painter", "pickers"].forEach(function (name) {
      var c = component(name);
      if (c && c.reset) c.reset();
    });
    autogrow($("#instruction"));
  }

  function sync() {
    var state = $("#composer-state"), toggle = $("#mask-toggle"), box = $("#instruction");
    if (!state) return;
    var hasHead = state.getAttribute("data-has-head") === "true";
    if (toggle) toggle.disabled = !hasHead;
    if (box) box.placeholder = state.getAttribute("data-placeholder") || box.placeholder;
    var painter = component("painter");
    if (painter) painter.follow(state);
  }

  function isComposer(elt) { return !!elt && elt.id === "composer"; }

  // Enter sends, Shift+Enter adds a line.
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (t && t.id === "instruction" && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (t.value.trim()) t.form.requestSubmit(); // an empty one: static/composer_alerts.js says so
    }
  });

  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "instruction") autogrow(evt.target);
  });

  // The pending bubble appears as soon as a turn is sent (before the upload ends);
  // the server's answer replaces it with the real, polled one (static/scroll.js brings it into view).
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (!isComposer(evt.detail.elt)) return;
    var list = $("#conversation .turns"), text = $("#instruction");
    if (!list || !text || !text.value.trim()) return;
    var li = document.createElement("li");
    li.className = "turn sending";
    li.innerHTML = '<div class="bubble user"><p class="instruction"></p></div>' +
      '<div class="bubble assistant"><p class="pending"><span class="spinner" aria-hidden="true"></span><span>Sending…</span></p></div>';
    li.querySelector(".instruction").textContent = text.value;
    list.appendChild(li);
  });

  document.addEventListener("htmx:afterRequest", function (evt) {
    if (!isComposer(evt.detail.elt)) return;
    $all("#conversation .turn.sending").forEach(function (el) { el.remove(); });
    if (evt.detail.successful && evt.detail.xhr.status < 400) reset();
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.detail.target;
    if (!target) return;
    if (target.id === "live") sync();
    if (target.id === "content") autogrow($("#instruction"));
  });

  document.addEventListener("DOMContentLoaded", function () { autogrow($("#instruction")); });

  window.Retouch = window.Retouch || {};
  window.Retouch.composer = { reset: reset, sync: sync, autogrow: autogrow };
})();

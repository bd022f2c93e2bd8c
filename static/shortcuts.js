// Keyboard shortcuts on a thread page: "/" jumps to the composer, "?" opens the list of shortcuts
// (#shortcuts-dialog). Neither fires while typing in a field. A thread that opens focuses its composer
// on computers with a mouse or trackpad, not on phones, where focusing would pop the keyboard up.
(function () {
  "use strict";

  var focusedOnOpen = false;

  function typing(el) {
    if (!el || el === document.body) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // Move the keyboard focus to the composer's text box (without scrolling the page: it is sticky).
  function focusComposer() {
    var box = document.getElementById("instruction");
    if (!box || box.disabled) return false;
    box.focus({ preventScroll: true });
    return true;
  }

  // Open the keyboard shortcuts dialog, if this page has one.
  function openHelp() {
    var dialog = document.getElementById("shortcuts-dialog");
    if (!dialog || dialog.open) return false;
    dialog.showModal();
    return true;
  }

  // Forget what was done for the page that was open (focus on open is once per page).
  function reset() { focusedOnOpen = false; }

  function focusOnOpen() {
    if (focusedOnOpen) return;
    focusedOnOpen = true;
    if (location.hash || !window.matchMedia || !matchMedia("(pointer: fine)").matches) return;
    focusComposer();
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.defaultPrevented || evt.ctrlKey || evt.metaKey || evt.altKey || evt.isComposing) return;
    if (typing(evt.target) || document.querySelector("dialog[open]")) return;
    if (evt.key === "/" && focusComposer()) evt.preventDefault();
    else if (evt.key === "?" && openHelp()) evt.preventDefault();
  });

  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("#shortcuts-close, #shortcuts-open") : null;
    if (!t) return;
    if (t.id === "shortcuts-open") { openHelp(); return; }
    var dialog = document.getElementById("shortcuts-dialog");
    if (dialog) dialog.close();
  });

  document.addEventListener("DOMContentLoaded", focusOnOpen);
  document.addEventListener("htmx:afterSettle", function (evt) {
    // A thread page swapped in by in-app navigation (Back from a version, say).
    if (evt.detail.target && evt.detail.target.id === "content" && document.getElementById("composer")) {
      reset();
      focusOnOpen();
    }
  });

  window.Retouch = window.Retouch || {};
  window.Retouch.shortcuts = { focusComposer: focusComposer, openHelp: openHelp, reset: reset };
})();

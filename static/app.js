// Retouch front-end glue. No inline scripts: the Content-Security-Policy forbids them.
// Everything is wired by event delegation on document, so it keeps working after
// htmx swaps parts of the page (the live conversation, the main column).
//
// One behaviour per file, each an IIFE that owns its state and offers reset() on window.Retouch:
// composer.js (sending, Enter, autogrow, the head it works on), attachments.js (references, the
// photo, paste and drop), painter.js (the region painter), pickers.js (backend and model options),
// live.js (server-sent events, earlier turns, elapsed time), lightbox.js, threads.js, scroll.js,
// composer_alerts.js, shortcuts.js, turn_actions.js, starters.js. What is left here: htmx errors and
// the flash, renaming a thread, the share dialog, the compare slider and the version tree's scroll.
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function flash(text) {
    var el = document.getElementById("flash");
    if (el) el.textContent = text;
  }

  // ------------------------------------------------------------ htmx errors
  // 4xx answers carry a readable message: swap them in (the server sets HX-Retarget
  // to the flash area for error fragments; a form answering 422 re-renders itself).
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var status = evt.detail.xhr.status;
    if (status >= 400 && status < 500) {
      evt.detail.shouldSwap = true;
      evt.detail.isError = false;
    }
  });
  // The composer's errors show next to it instead (static/composer_alerts.js).
  function fromComposer(evt) {
    var elt = evt.detail.requestConfig ? evt.detail.requestConfig.elt : evt.detail.elt;
    return !!elt && elt.id === "composer";
  }
  document.addEventListener("htmx:responseError", function (evt) {
    if (evt.detail.xhr.status >= 500 && !fromComposer(evt)) flash("Something went wrong on the server. Please try again.");
  });
  document.addEventListener("htmx:sendError", function (evt) {
    if (!fromComposer(evt)) flash("The server cannot be reached. Check your connection and try again.");
  });

  // After a form succeeds: clear the flash; after a send, clear the composer.
  // (Polling requests leave the flash alone, so an error stays readable.)
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!evt.detail.successful || evt.detail.xhr.status >= 400) return;
    if (!elt || elt.tagName !== "FORM") return;
    flash("");
    // (A sent composer clears itself: static/composer.js.)
    if (elt.id === "title-form") {
      var input = $("#thread-title"), heading = $("#thread-heading");
      if (input) {
        input.setAttribute("data-saved", input.value);
        document.title = input.value + " · Retouch";
        if (heading) heading.textContent = input.value;
        closeRename(document.activeElement === input);
      }
    }
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.detail.target;
    if (!target) return;
    if (target.id === "content") {
      // A navigation inside the app: start at the top and move focus to the new page. (Each component
      // resets itself for the new main column: attachments.js, painter.js, pickers.js, live.js...)
      window.scrollTo(0, 0);
      target.focus({ preventScroll: true });
      initCompare();
    }
    revealTreeNode();
    if (target.id === "share-panel" || (target.closest && target.closest("#share-panel"))) {
      var first = $("#share-url") || $("#share-create");
      if (first) first.focus();
    }
  });

  // ------------------------------------------------------------ title
  // The title is the page's h1; the button beside it swaps in a text field. Enter or leaving the
  // field saves (htmx, #title-form), Escape puts the old title back.
  function openRename() {
    var form = $("#title-form"), input = $("#thread-title"), heading = $("#thread-heading"), button = $("#title-rename");
    if (!form || !input) return;
    form.hidden = false;
    if (heading) heading.hidden = true;
    if (button) { button.hidden = true; button.setAttribute("aria-expanded", "true"); }
    input.focus();
    input.select();
  }
  function closeRename(refocus) {
    var form = $("#title-form"), heading = $("#thread-heading"), button = $("#title-rename");
    if (!form || form.hidden) return;
    form.hidden = true;
    if (heading) heading.hidden = false;
    if (button) {
      button.hidden = false;
      button.setAttribute("aria-expanded", "false");
      if (refocus) button.focus();
    }
  }
  document.addEventListener("focusout", function (evt) {
    // Leaving the field: its change event has already asked htmx to save.
    if (evt.target && evt.target.id === "thread-title") closeRename(false);
  });
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (t && t.id === "thread-title" && evt.key === "Escape") {
      t.value = t.getAttribute("data-saved") || t.defaultValue;
      closeRename(true);
    }
  });

  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "compare-range") setSplit(evt.target);
  });

  // ------------------------------------------------------------ clicks
  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("button") : null;
    var dialog;
    if (evt.target && evt.target.tagName === "DIALOG") {
      // A click on the backdrop closes the dialog.
      var r = evt.target.getBoundingClientRect();
      if (evt.clientX < r.left || evt.clientX > r.right || evt.clientY < r.top || evt.clientY > r.bottom) evt.target.close();
      return;
    }
    if (!t) return;
    switch (t.id) {
      case "share-open":
        dialog = $("#share-dialog");
        if (dialog && !dialog.open) dialog.showModal();
        return;
      case "share-close": dialog = $("#share-dialog"); if (dialog) dialog.close(); return;
      case "share-copy": copyShareLink(); return;
      case "title-rename": openRename(); return;
    }
  });

  function copyShareLink() {
    var input = $("#share-url"), status = $("#share-status");
    if (!input) return;
    function done(ok) {
      if (status) status.textContent = ok ? "Copied" : "Press Ctrl+C (⌘C) to copy the selected link.";
    }
    function fallback() {
      input.focus();
      input.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(function () { done(true); }, fallback);
    } else {
      fallback();
    }
  }

  // Select the share link on focus, for easy copying.
  document.addEventListener("focusin", function (evt) {
    if (evt.target && evt.target.id === "share-url") evt.target.select();
  });

  // ------------------------------------------------------------ compare slider
  function setSplit(range) {
    var slider = range.closest(".compare-slider");
    if (slider) slider.style.setProperty("--split", range.value + "%");
  }
  function initCompare() {
    $all("#compare-range").forEach(setSplit);
  }

  // Keep the head (or the open version) in view in a long version tree.
  var revealed = "", treeScroll = 0;
  document.addEventListener("scroll", function (evt) {
    if (evt.target && evt.target.classList && evt.target.classList.contains("lanes")) treeScroll = evt.target.scrollLeft;
  }, true);
  function revealTreeNode() {
    var lanes = $("#version-tree .lanes");
    var node = $("#version-tree .is-selected") || $("#version-tree .is-head");
    if (!lanes || !node) return;
    var key = location.pathname + "#" + node.getAttribute("data-version");
    if (key === revealed) {
      // A poll replaced the tree: keep where the person had scrolled it.
      lanes.scrollLeft = treeScroll;
      return;
    }
    revealed = key;
    if (lanes.scrollWidth <= lanes.clientWidth) return;
    var left = node.getBoundingClientRect().left - lanes.getBoundingClientRect().left + lanes.scrollLeft;
    lanes.scrollLeft = treeScroll = Math.max(0, left - lanes.clientWidth / 2);
  }

  document.addEventListener("DOMContentLoaded", function () {
    revealTreeNode();
    initCompare();
    var title = $("#thread-title");
    if (title) title.setAttribute("data-saved", title.value);
    // Open the share dialog after creating or revoking a link without htmx (/t/ID#share).
    if (location.hash === "#share") {
      var dialog = $("#share-dialog");
      if (dialog && !dialog.open) dialog.showModal();
    }
  });
})();

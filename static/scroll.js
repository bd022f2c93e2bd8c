// Chat-like scrolling on a thread page. A thread opens at its newest turn. While the person is at
// the bottom (within the composer's data-pin-within pixels of it), the page stays pinned there as
// content grows: a ResizeObserver on the page and image load events, never timers. Scrolled up, the
// page stays put and a "New result" button above the composer says something arrived; clicking it
// scrolls down. Sending a turn pins the page again, so its result lands in view.
(function () {
  "use strict";

  var pinned = true;     // follow the bottom as content grows
  var lastY = 0;         // scroll position at the last scroll event
  var lastKey = null;    // what the newest turn showed at the last live update
  var observer = null;

  function composer() { return document.getElementById("composer"); }
  function pill() { return document.getElementById("new-result"); }
  function threshold() {
    var c = composer();
    var n = c ? parseInt(c.getAttribute("data-pin-within"), 10) : NaN;
    return isNaN(n) ? 80 : n;
  }
  function distanceToBottom() {
    var doc = document.documentElement;
    return doc.scrollHeight - (window.scrollY + window.innerHeight);
  }
  function reducedMotion() { return window.matchMedia && matchMedia("(prefers-reduced-motion: reduce)").matches; }

  function showPill(show) {
    var p = pill();
    if (p) p.hidden = !show;
  }

  // Scroll to the end of the page (the newest turn, just above the composer) and stay pinned there.
  function scrollToBottom(smooth) {
    pinned = true;
    showPill(false);
    window.scrollTo({ top: document.documentElement.scrollHeight, behavior: smooth && !reducedMotion() ? "smooth" : "auto" });
    lastY = window.scrollY;
  }

  // Something the person may want to see changed below: follow it when pinned, else offer the button.
  function contentGrew() {
    if (!composer()) return;
    if (pinned) {
      if (distanceToBottom() > 1) scrollToBottom(false);
    }
  }

  // The newest turn's id, status and version: a change means news.
  function newestKey() {
    var turns = document.querySelectorAll("#conversation .turns > li.turn:not(.sending)");
    var last = turns.length ? turns[turns.length - 1] : null;
    if (!last) return "";
    var fig = last.querySelector("figure.version");
    return last.id + "|" + last.className + "|" + (fig ? (fig.getAttribute("data-version") || "p" + fig.getAttribute("data-partial")) : "");
  }

  function onScroll() {
    var y = window.scrollY;
    if (distanceToBottom() <= threshold()) {
      pinned = true;
      showPill(false);
    } else if (y < lastY) {
      pinned = false; // the person scrolled up (content growing below never fires a scroll event)
    }
    lastY = y;
  }

  function observe() {
    if (observer || !("ResizeObserver" in window)) return;
    observer = new ResizeObserver(contentGrew);
    observer.observe(document.body);
  }

  // Forget the state (a page swapped in by navigation starts afresh).
  function reset() {
    pinned = true;
    lastY = window.scrollY;
    lastKey = newestKey();
    showPill(false);
  }

  window.addEventListener("scroll", onScroll, { passive: true });

  // An image finished loading (a result, a partial frame, an earlier turn's): keep the bottom in view.
  document.addEventListener("load", function (evt) {
    if (evt.target && evt.target.tagName === "IMG") contentGrew();
  }, true);

  // Sending: the pending bubble goes to the bottom and the page follows the turn from there.
  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (evt.detail.elt && evt.detail.elt.id === "composer") scrollToBottom(false);
  });

  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.detail.target;
    if (!target) return;
    if (target.id === "content") {
      // In-app navigation: a thread page opens at its newest turn, as on a full load.
      reset();
      if (composer() && document.querySelector("#conversation .turn")) scrollToBottom(false);
      else pinned = false;
      return;
    }
    if (target.id !== "live") return;
    var key = newestKey();
    if (key !== lastKey) {
      if (pinned) scrollToBottom(false);
      else if (distanceToBottom() > threshold()) showPill(true);
    } else {
      contentGrew();
    }
    lastKey = key;
  });

  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("#new-result") : null;
    if (t) scrollToBottom(true);
  });

  document.addEventListener("DOMContentLoaded", function () {
    lastKey = newestKey();
    // A thread opens at its newest turn, as chat apps do (unless the address points elsewhere).
    if (composer() && !location.hash && document.querySelector("#conversation .turn")) scrollToBottom(false);
    lastY = window.scrollY;
    pinned = distanceToBottom() <= threshold();
    observe();
  });

  window.Retouch = window.Retouch || {};
  window.Retouch.scroll = { toBottom: scrollToBottom, reset: reset };
})();

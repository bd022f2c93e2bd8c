// Live updates of a thread page (and a shared page): the parts that change while turns run
// (#live, templates/_live.html) are fetched again through #live-refresh when the thread changes.
//
// While the page is visible it keeps one EventSource on the thread's server-sent events (the
// .thread-page's data-events; app/events.py): "changed" refetches the live block, so a turn queued
// from another device or the JSON API appears, runs and finishes without a reload. "ready" (sent
// once connected) refetches too, except on the page's first connection while nothing is pending
// (the page was just rendered). A hidden tab closes the stream (browsers allow six HTTP/1.1
// connections per server, shared by all tabs) and refetches when it is shown again. While a turn is
// pending, the live block also polls every 5 s (hx-trigger in templates/_live.html), in case the
// stream is down.
//
// A refresh sends the page's version-tree key, and an unchanged tree is kept rather than sent again.
// Also here: the earlier turns load when their placeholder scrolls into view, and the elapsed time
// of a pending turn ticks. reset() closes the stream (a new main column opens its own).
(function () {
  "use strict";

  // fresh: the page was just rendered and its stream has not connected yet (nothing to catch up with).
  var source = null, sourceUrl = "", connected = false, fresh = true;

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function busy() { return !!$("#conversation[aria-busy=true]"); }

  function refresh() {
    var trigger = $("#live-refresh");
    if (trigger && window.htmx) window.htmx.trigger(trigger, "refresh");
  }

  function close() {
    if (source) source.close();
    source = null;
    connected = false;
  }

  // Open the stream when the page has one and is visible; close it otherwise.
  function sync() {
    var page = $(".thread-page[data-events]");
    var url = page ? page.getAttribute("data-events") : "";
    var want = !!url && !document.hidden;
    if (source && (!want || url !== sourceUrl)) close();
    if (!want || source) return;
    sourceUrl = url;
    source = new EventSource(url);
    source.addEventListener("ready", function () {
      connected = true;
      // Subscribed: a change may have come while connecting or while the tab was hidden. The first
      // connection of a freshly rendered, idle page has nothing to catch up with.
      if (!fresh || busy()) refresh();
      fresh = false;
    });
    source.addEventListener("changed", refresh);
    source.addEventListener("error", function () { connected = false; });
  }

  function reset() {
    close();
    sourceUrl = "";
    fresh = true;
  }

  // Hidden: close the stream. Shown again: reopen it; its "ready" catches up.
  document.addEventListener("visibilitychange", sync);

  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "content") reset();
    sync();
    tick();
  });

  // A live refresh says which version tree the page shows (#version-tree's data-tree), and which
  // settled turns (each li's data-key; the newest #live-refresh's data-max-turns). What is still current
  // comes back as an empty hx-preserve placeholder and htmx keeps the page's own element
  // (app/pages.py, live_context): a turn starting or finishing costs what changed, not the whole block.
  document.addEventListener("htmx:configRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || (elt.id !== "live-refresh" && elt.id !== "live") || evt.detail.verb !== "get") return;
    var tree = $("#version-tree[data-tree]");
    if (tree) evt.detail.parameters.tree = tree.getAttribute("data-tree");
    // The same for the settled turns it shows (their data-key): unchanged ones are kept too.
    var most = parseInt(($("#live-refresh") || document.body).getAttribute("data-max-turns"), 10) || 0;
    var turns = most ? $all("#conversation li.turn[data-key]").slice(-most).map(function (li) {
      return li.id.replace(/^turn-/, "") + ":" + li.getAttribute("data-key");
    }) : [];
    if (turns.length) evt.detail.parameters.turns = turns.join(",");
  });

  // ------------------------------------------------------------ earlier turns
  // A thread page shows its newest turns; the placeholder above them loads the earlier ones when it
  // scrolls into view. Watched only after the page has opened at its newest turn, so opening a long
  // thread does not load its history at once.
  var olderObserver = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) return;
      olderObserver.unobserve(e.target);
      window.htmx.trigger(e.target, "load-older");
    });
  }) : null;
  function watchOlderTurns(root) {
    if (!olderObserver || !root.querySelectorAll) return;
    root.querySelectorAll("li.older-turns button").forEach(function (b) { olderObserver.observe(b); });
  }
  document.addEventListener("htmx:load", function (evt) { watchOlderTurns(evt.target); });

  // ------------------------------------------------------------ elapsed time
  function tick() {
    var now = Date.now();
    $all(".elapsed[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (isNaN(since)) return;
      var s = Math.max(0, Math.round((now - since) / 1000));
      el.textContent = s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
    });
  }
  setInterval(tick, 1000);

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    sync();
    // (static/scroll.js opens a thread at its newest turn.)
    watchOlderTurns(document);
  });

  window.Retouch = window.Retouch || {};
  window.Retouch.live = {
    reset: reset, sync: sync, refresh: refresh,
    state: function () { return source ? (connected ? "open" : "connecting") : "closed"; }
  };
})();

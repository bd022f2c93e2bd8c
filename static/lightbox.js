// The image lightbox (templates/_lightbox.html). A plain left click on an image link marked
// data-lightbox="open" (conversation results, the version page's image) opens a modal <dialog> with that
// version's full PNG, its preview shown while the PNG loads. A click with a modifier key, or a middle
// click, is left to the link (new tab, htmx navigation).
//
// The version tree's nodes (data-lightbox="list") open it the same way: a plain click or Enter shows that
// version here, while the node's href (the version page) still serves a middle click, a new tab and a
// page without JavaScript; the lightbox's "Version page" link then goes there (revert, branch, compare).
//
// Versions: every [data-lightbox] element on the page (the links above, and the version tree's nodes)
// inside or on an element with data-version is one version; the server renders its full-image URL, preview, download URL, size and caption as
// data-lightbox-* attributes. ← / → and the on-screen buttons step through them in version order; at
// the first and last version the button is disabled and the key only says so (no wrap-around).
// The list is read again at each step, so versions that arrive while it is open are included.
//
// View: "fit" (the whole image, never enlarged) or 100%, toggled by the button, a double-click or a
// double tap; the wheel and a two-finger pinch zoom around the pointer (up to 800%); dragging pans when
// the image is larger than the stage; a horizontal swipe at fit steps versions; + / - zoom, 0 fits and
// 1 shows 100% by keys. Stepping to a version of the same size keeps the zoom and position (to compare a
// detail across versions); another size starts at fit.
// Escape closes (native dialog), and focus returns to the link that opened it.
(function () {
  "use strict";

  var MAX_SCALE = 8;
  var MARGIN = 16;        // px kept around the image at fit
  var SWIPE = 60;         // px of horizontal drag at fit that steps a version
  var state;

  // Forget everything about the open (or last) lightbox; close it if it is open.
  function reset() {
    var prev = state;
    state = {
      opener: null,       // the link that opened it (focus returns there)
      openerKind: "open", // its data-lightbox ("open", or "list" for a version tree node)
      openerVersion: null,
      version: null,      // the version shown
      w: 1, h: 1,         // its size in pixels
      scale: 1, x: 0, y: 0, // the image's transform inside the stage
      mode: "fit",        // "fit", "actual" (100%) or "zoom"
      pointers: {}, drag: null, pinch: null,
      lastTap: null, tapToggledAt: 0,
      token: 0            // bumped per image shown: a stale load is ignored
    };
    if (prev) {
      var dlg = el("lightbox");
      if (dlg && dlg.open) dlg.close();
    }
  }

  function el(id) { return document.getElementById(id); }

  // ------------------------------------------------------------ the versions on the page

  function versionOf(node) {
    var holder = node.closest("[data-version]");
    var n = holder ? parseInt(holder.getAttribute("data-version"), 10) : NaN;
    return n > 0 ? n : null;
  }

  // One entry per version on the page, in version order; a link that opens the lightbox (a big image,
  // whose loaded preview can be shown at once) is preferred over a version tree node.
  function versions() {
    var byNumber = {};
    Array.prototype.forEach.call(document.querySelectorAll("[data-lightbox][data-lightbox-full]"), function (node) {
      if (node.closest("#lightbox")) return;
      var n = versionOf(node);
      if (n === null) return;
      var known = byNumber[n];
      if (!known || (known.getAttribute("data-lightbox") !== "open" && node.getAttribute("data-lightbox") === "open")) {
        byNumber[n] = node;
      }
    });
    return Object.keys(byNumber).map(Number).sort(function (a, b) { return a - b; })
      .map(function (n) { return describe(byNumber[n], n); });
  }

  function describe(node, n) {
    var img = node.getAttribute("data-lightbox") === "open" ? node.querySelector("img") : null;
    var loaded = img && img.complete && img.naturalWidth > 0 ? (img.currentSrc || img.src) : null;
    return {
      n: n,
      node: node,
      full: node.getAttribute("data-lightbox-full"),
      preview: loaded || node.getAttribute("data-lightbox-preview"),
      download: node.getAttribute("data-lightbox-download") || node.getAttribute("data-lightbox-full"),
      caption: node.getAttribute("data-lightbox-caption") || "",
      w: parseInt(node.getAttribute("data-lightbox-width"), 10) || (img && img.naturalWidth) || 1,
      h: parseInt(node.getAttribute("data-lightbox-height"), 10) || (img && img.naturalHeight) || 1
    };
  }

  // ------------------------------------------------------------ geometry

  function stageBox() {
    var stage = el("lightbox-stage");
    return { w: stage.clientWidth, h: stage.clientHeight };
  }

  function fitScale() {
    var s = stageBox();
    return Math.max(0.01, Math.min(1, (s.w - MARGIN) / state.w, (s.h - MARGIN) / state.h));
  }

  function modeFor(scale) {
    if (Math.abs(scale - fitScale()) < 1e-3) return "fit";
    return Math.abs(scale - 1) < 1e-3 ? "actual" : "zoom";
  }

  // Clamp the position (centred when smaller than the stage, no gap at an edge when larger) and draw.
  function apply() {
    var dlg = el("lightbox"), img = el("lightbox-image"), s = stageBox();
    var sw = state.w * state.scale, sh = state.h * state.scale;
    state.x = sw <= s.w ? (s.w - sw) / 2 : Math.min(0, Math.max(s.w - sw, state.x));
    state.y = sh <= s.h ? (s.h - sh) / 2 : Math.min(0, Math.max(s.h - sh, state.y));
    img.style.transform = "translate(" + state.x + "px, " + state.y + "px) scale(" + state.scale + ")";
    var pct = Math.round(state.scale * 100) + "%";
    el("lightbox-scale").textContent = pct;
    dlg.setAttribute("data-mode", state.mode);
    dlg.setAttribute("data-scale", state.scale.toFixed(4));
    dlg.classList.toggle("is-pannable", sw > s.w + 0.5 || sh > s.h + 0.5);
    dlg.classList.toggle("is-magnified", state.scale >= 2);
    var zoom = el("lightbox-zoom");
    var fit = state.mode === "fit";
    zoom.textContent = fit ? "100%" : "Fit";
    zoom.setAttribute("aria-label", fit ? "Show at 100%" : "Fit to the window");
    zoom.title = fit ? "Show at 100% (or double-click the image; the wheel and a pinch zoom too)" : "Fit the image to the window (or double-click it)";
  }

  function setFit() {
    state.scale = fitScale();
    state.mode = "fit";
    apply();
  }

  // Zoom to ``scale``, keeping the image point under (cx, cy) (stage pixels) where it is.
  function zoomTo(scale, cx, cy) {
    var s = stageBox();
    if (cx === undefined) { cx = s.w / 2; cy = s.h / 2; }
    scale = Math.max(Math.min(fitScale(), 1), Math.min(MAX_SCALE, scale));
    var k = scale / state.scale;
    state.x = cx - (cx - state.x) * k;
    state.y = cy - (cy - state.y) * k;
    state.scale = scale;
    state.mode = modeFor(scale);
    apply();
  }

  function toggle(cx, cy) {
    if (state.mode === "fit") { zoomTo(1, cx, cy); state.mode = "actual"; apply(); }
    else setFit();
  }

  // ------------------------------------------------------------ showing a version

  // The version tree's node of version ``n`` (its href is the version page), or null.
  function treeNode(n) {
    return document.querySelector('#version-tree a.version-node[data-version="' + n + '"][href]');
  }
  var passThrough = null;  // a tree node clicked on purpose to navigate (the "Version page" link)

  function say(text) { el("lightbox-status").textContent = text; }

  function show(entry) {
    var dlg = el("lightbox"), img = el("lightbox-image");
    var keep = state.version !== null && state.mode !== "fit" && entry.w === state.w && entry.h === state.h;
    var token = ++state.token;
    state.version = entry.n;
    state.w = entry.w;
    state.h = entry.h;
    img.width = entry.w;
    img.height = entry.h;
    img.alt = "Version " + entry.n + ": " + entry.caption;
    el("lightbox-version").textContent = "Version " + entry.n;
    el("lightbox-text").textContent = entry.caption;
    var download = el("lightbox-download");
    download.href = entry.download;
    download.setAttribute("aria-label", "Download version " + entry.n + " (PNG)");
    dlg.setAttribute("data-version", String(entry.n));
    var page = el("lightbox-page"), node = treeNode(entry.n);
    if (page) {
      page.hidden = !node;
      if (node) {
        page.href = node.getAttribute("href");
        page.title = "Open version " + entry.n + "'s page: continue from it, compare it, branch from it";
      } else page.removeAttribute("href");
    }

    syncNav();

    // The preview (already loaded on the page, or a small WebP) first, then the full PNG.
    var usePreview = entry.preview && entry.preview !== entry.full;
    img.src = usePreview ? entry.preview : entry.full;
    dlg.setAttribute("data-loaded", usePreview ? "preview" : "loading");
    dlg.classList.add("is-loading");
    say("Loading the full image…");
    var full = new Image();
    full.onload = function () {
      if (token !== state.token) return;
      img.src = entry.full;
      dlg.setAttribute("data-loaded", "full");
      dlg.classList.remove("is-loading");
      say("");
    };
    full.onerror = function () {
      if (token !== state.token) return;
      dlg.classList.remove("is-loading");
      say("The full image could not be loaded.");
    };
    full.src = entry.full;

    if (keep) apply();
    else setFit();
  }

  // "N of M" and the previous / next buttons, from the versions on the page now (a live update may add one).
  function syncNav() {
    var list = versions(), i = indexOf(list, state.version);
    el("lightbox-count").textContent = list.length > 1 && i >= 0 ? "· " + (i + 1) + " of " + list.length : "";
    var prev = el("lightbox-prev"), next = el("lightbox-next"), focused = document.activeElement;
    prev.disabled = i <= 0;
    next.disabled = i < 0 || i >= list.length - 1;
    prev.hidden = next.hidden = list.length < 2;
    if ((focused === prev || focused === next) && (focused.disabled || focused.hidden)) {
      var other = focused === prev ? next : prev;
      (other.disabled || other.hidden ? el("lightbox-close") : other).focus();
    }
  }

  function indexOf(list, n) {
    for (var i = 0; i < list.length; i++) if (list[i].n === n) return i;
    return -1;
  }

  // Show the version ``delta`` steps away; false at either end (nothing changes then).
  function step(delta) {
    var dlg = el("lightbox");
    if (!dlg || !dlg.open) return false;
    var list = versions(), i = indexOf(list, state.version), j = i + delta;
    if (i < 0 || j < 0 || j >= list.length) {
      say(delta < 0 ? "This is the first version." : "This is the last version.");
      return false;
    }
    show(list[j]);
    return true;
  }

  function open(link) {
    var dlg = el("lightbox");
    if (!dlg) return false;
    bind();
    var n = versionOf(link);
    if (n === null || !link.getAttribute("data-lightbox-full")) return false;
    state.opener = link;
    state.openerKind = link.getAttribute("data-lightbox") === "list" ? "list" : "open";
    state.openerVersion = n;
    state.version = null;
    state.mode = "fit";
    if (!dlg.open) dlg.showModal();
    show(describe(link, n));
    return true;
  }

  function close() {
    var dlg = el("lightbox");
    if (dlg && dlg.open) dlg.close();
  }

  // ------------------------------------------------------------ wiring

  // Clicks on image links and version tree nodes: capture phase, so htmx's own click handler on the
  // link never sees them.
  document.addEventListener("click", function (evt) {
    if (evt.defaultPrevented || evt.button !== 0 || evt.ctrlKey || evt.metaKey || evt.shiftKey || evt.altKey) return;
    var link = evt.target.closest ? evt.target.closest('a[data-lightbox="open"], a[data-lightbox="list"]') : null;
    if (!link || !el("lightbox")) return;
    if (link === passThrough) { passThrough = null; return; }  // navigate (htmx), as asked
    if (open(link)) {
      evt.preventDefault();
      evt.stopPropagation();
    }
  }, true);

  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("#lightbox-prev, #lightbox-next, #lightbox-zoom, #lightbox-close, #lightbox-page") : null;
    if (!t) return;
    if (t.id === "lightbox-page") {
      // A plain click: close and go to the version page the way its tree node does (htmx, pushed URL).
      // A middle click or a modified one opens the href in a new tab, as links do.
      if (evt.button !== 0 || evt.ctrlKey || evt.metaKey || evt.shiftKey || evt.altKey) return;
      var node = treeNode(state.version);
      if (!node) return;
      evt.preventDefault();
      state.opener = null;  // the page changes: no focus to return
      close();
      passThrough = node;
      node.click();
      passThrough = null;
      return;
    }
    if (t.id === "lightbox-prev") step(-1);
    else if (t.id === "lightbox-next") step(1);
    else if (t.id === "lightbox-zoom") toggle();
    else close();
  });

  document.addEventListener("keydown", function (evt) {
    var dlg = el("lightbox");
    if (!dlg || !dlg.open || evt.ctrlKey || evt.metaKey || evt.altKey || evt.isComposing) return;
    var handled = true;
    if (evt.key === "ArrowLeft") step(-1);
    else if (evt.key === "ArrowRight") step(1);
    else if (evt.key === "+" || evt.key === "=") zoomTo(state.scale * 1.25);
    else if (evt.key === "-") zoomTo(state.scale / 1.25);
    else if (evt.key === "0") setFit();
    else if (evt.key === "1") { zoomTo(1); state.mode = "actual"; apply(); }
    else handled = false;
    if (handled) evt.preventDefault();
  });

  document.addEventListener("htmx:afterSettle", function () {
    var dlg = el("lightbox");
    if (dlg && dlg.open && state.version !== null) syncNav();
  });

  window.addEventListener("resize", function () {
    var dlg = el("lightbox");
    if (!dlg || !dlg.open) return;
    if (state.mode === "fit") setFit(); else apply();
  });

  function local(evt) {
    var r = el("lightbox-stage").getBoundingClientRect();
    return { x: evt.clientX - r.left, y: evt.clientY - r.top };
  }

  function twoPointers() {
    var ids = Object.keys(state.pointers);
    if (ids.length < 2) return null;
    var a = state.pointers[ids[0]], b = state.pointers[ids[1]];
    return { dist: Math.max(1, Math.hypot(a.x - b.x, a.y - b.y)), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
  }

  function startDrag(p) { state.drag = { x: p.x, y: p.y, ox: state.x, oy: state.y, moved: 0 }; }

  // Listeners that need the stage itself (a non-passive wheel, pointer capture): bound once per dialog.
  function bind() {
    var stage = el("lightbox-stage"), dlg = el("lightbox");
    if (!stage || stage.lightboxBound) return;
    stage.lightboxBound = true;

    stage.addEventListener("wheel", function (evt) {
      evt.preventDefault();
      var unit = evt.deltaMode === 1 ? 16 : evt.deltaMode === 2 ? stageBox().h : 1;
      var rate = evt.ctrlKey ? 0.01 : 0.002; // ctrl+wheel is a trackpad pinch: small deltas
      var p = local(evt);
      zoomTo(state.scale * Math.exp(-evt.deltaY * unit * rate), p.x, p.y);
    }, { passive: false });

    stage.addEventListener("pointerdown", function (evt) {
      if (evt.target.closest(".lightbox-nav")) return;
      if (evt.pointerType === "mouse" && evt.button !== 0) return;
      evt.preventDefault();
      try { stage.setPointerCapture(evt.pointerId); } catch (e) { /* a pointer that already ended */ }
      state.pointers[evt.pointerId] = local(evt);
      var two = twoPointers();
      if (two) { state.pinch = two; state.drag = null; }
      else startDrag(state.pointers[evt.pointerId]);
      dlg.classList.add("is-dragging");
    });

    stage.addEventListener("pointermove", function (evt) {
      if (!(evt.pointerId in state.pointers)) return;
      var p = state.pointers[evt.pointerId] = local(evt);
      if (state.pinch) {
        var two = twoPointers();
        if (!two) return;
        state.x += two.x - state.pinch.x; // the fingers' midpoint pans,
        state.y += two.y - state.pinch.y;
        zoomTo(state.scale * two.dist / state.pinch.dist, two.x, two.y); // their spread zooms
        state.pinch = two;
      } else if (state.drag) {
        state.drag.moved = Math.max(state.drag.moved, Math.hypot(p.x - state.drag.x, p.y - state.drag.y));
        if (state.mode !== "fit") {
          state.x = state.drag.ox + p.x - state.drag.x;
          state.y = state.drag.oy + p.y - state.drag.y;
          apply();
        }
      }
    });

    function end(evt) {
      if (!(evt.pointerId in state.pointers)) return;
      var p = local(evt), drag = state.drag;
      delete state.pointers[evt.pointerId];
      var ids = Object.keys(state.pointers);
      if (state.pinch) {
        state.pinch = null;
        if (ids.length === 1) startDrag(state.pointers[ids[0]]); // one finger stays: it pans on
        else state.drag = null;
        return;
      }
      state.drag = null;
      if (!ids.length) dlg.classList.remove("is-dragging");
      if (!drag || evt.type === "pointercancel") return;
      var dx = p.x - drag.x, dy = p.y - drag.y;
      if (state.mode === "fit" && Math.abs(dx) > SWIPE && Math.abs(dx) > 2 * Math.abs(dy)) { step(dx < 0 ? 1 : -1); return; }
      if (evt.pointerType !== "mouse" && drag.moved < 10) { // a tap: two in a row toggle fit / 100%
        var now = Date.now(), last = state.lastTap;
        if (last && now - last.t < 350 && Math.hypot(p.x - last.x, p.y - last.y) < 30) {
          state.lastTap = null;
          state.tapToggledAt = now;
          toggle(p.x, p.y);
        } else state.lastTap = { t: now, x: p.x, y: p.y };
      }
    }
    stage.addEventListener("pointerup", end);
    stage.addEventListener("pointercancel", end);

    stage.addEventListener("dblclick", function (evt) {
      if (evt.target.closest(".lightbox-nav") || Date.now() - state.tapToggledAt < 600) return;
      var p = local(evt);
      toggle(p.x, p.y);
    });

    dlg.addEventListener("close", function () {
      state.token++; // a full image still loading is no longer wanted
      var img = el("lightbox-image");
      img.removeAttribute("src");
      dlg.classList.remove("is-loading", "is-dragging", "is-pannable", "is-magnified");
      state.pointers = {}; state.drag = state.pinch = null;
      var opener = state.opener;
      if (opener && !document.contains(opener) && state.openerVersion !== null) {
        // the live conversation was redrawn while it was open: the same version's new link
        opener = null;
        Array.prototype.some.call(document.querySelectorAll('a[data-lightbox="' + state.openerKind + '"]'), function (a) {
          if (versionOf(a) === state.openerVersion) { opener = a; return true; }
          return false;
        });
      }
      state.opener = null;
      state.version = null;
      if (opener) opener.focus();
    });
  }

  reset();
  document.addEventListener("DOMContentLoaded", bind);

  window.Retouch = window.Retouch || {};
  window.Retouch.lightbox = { open: open, close: close, step: step, reset: reset, versions: versions };
})();

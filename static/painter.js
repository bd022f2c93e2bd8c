// The region painter (templates/thread.html #mask-editor): paint the region an edit may change (the
// mask), or draw coloured strokes that guide it (markup, for models that take it).
//
// Strokes are kept as data so undo can redraw. The overlay canvas has the image's own pixel size; the
// mask sent is a PNG of that size, white = edit, black = keep (the JSON API's convention, app/imaging.py
// decode_mask). The brush's range (#brush-size min/max/value) is the server's markup; nothing here
// repeats it. reset() clears the strokes and closes the painter: static/composer.js calls it after a
// send; it runs by itself when htmx swaps the main column. follow(state) paints on a new head
// (static/composer.js passes #composer-state after each live update).
(function () {
  "use strict";

  var strokes = [];
  var drawing = null;
  var maskMode = "region";   // "region" (a mask) or "draw" (markup)
  var OVERLAY = "rgb(255, 45, 85)";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function parts() {
    return { editor: $("#mask-editor"), canvas: $("#mask-canvas"), img: $("#mask-image"),
             toggle: $("#mask-toggle"), eraser: $("#mask-eraser"), size: $("#brush-size") };
  }

  function isOpen() {
    var editor = $("#mask-editor");
    return !!editor && !editor.hidden;
  }

  function open() {
    var m = parts();
    if (!m.editor) return;
    var head = $("#composer-state[data-head]") || $("#version-tree .version-node.is-head");
    if (head) {
      var w = head.getAttribute("data-width"), h = head.getAttribute("data-height");
      var src = head.getAttribute("data-image");
      if (m.img.getAttribute("src") !== src) {
        m.img.src = src;
        m.img.width = +w;
        m.img.height = +h;
      }
      if (m.canvas.width !== +w || m.canvas.height !== +h) {
        m.canvas.width = +w;
        m.canvas.height = +h;
        clear();
      }
    }
    m.editor.hidden = false;
    if (m.toggle) m.toggle.setAttribute("aria-pressed", "true");
    // Show the painter and the composer under it together.
    var composer = $("#composer");
    (composer || m.editor).scrollIntoView({ block: "end" });
  }

  function close() {
    var m = parts();
    if (!m.editor) return;
    m.editor.hidden = true;
    if (m.toggle) m.toggle.setAttribute("aria-pressed", "false");
  }

  // Forget the strokes (the mask or markup input is emptied).
  function clear() {
    strokes = [];
    drawing = null;
    redraw();
    updateMaskInput();
  }

  // Everything back to a fresh painter: no strokes, closed, the eraser off, the brush at its default;
  // the mode stays what its buttons say (a person who draws keeps drawing after a send).
  function reset() {
    var pressed = $("#mode-draw[aria-pressed=true]");
    maskMode = pressed && !pressed.disabled ? "draw" : "region";
    var eraser = $("#mask-eraser");
    if (eraser) eraser.setAttribute("aria-pressed", "false");
    var size = $("#brush-size");
    if (size) size.value = size.defaultValue;
    clear();
    close();
  }

  // After a live update: paint on the new head, or close when there is none.
  function follow(state) {
    var m = parts();
    if (!state || state.getAttribute("data-has-head") !== "true") { close(); return; }
    // Open: repaint over the new head. Closed: nothing to load now; open() fetches the head's PNG.
    if (m.img && m.img.getAttribute("src") !== state.getAttribute("data-image") && m.editor && !m.editor.hidden) {
      open();
    }
  }

  function drawStroke(ctx, s, paint, erase) {
    ctx.save();
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = s.width;
    if (erase === null && s.erase) {
      ctx.globalCompositeOperation = "destination-out";
      ctx.strokeStyle = "#000";
      ctx.fillStyle = "#000";
    } else {
      ctx.strokeStyle = s.erase ? erase : (s.color || paint);
      ctx.fillStyle = ctx.strokeStyle;
    }
    var p = s.points;
    if (p.length === 1) {
      ctx.beginPath();
      ctx.arc(p[0][0], p[0][1], s.width / 2, 0, Math.PI * 2);
      ctx.fill();
    } else {
      ctx.beginPath();
      ctx.moveTo(p[0][0], p[0][1]);
      for (var i = 1; i < p.length; i++) ctx.lineTo(p[i][0], p[i][1]);
      ctx.stroke();
    }
    ctx.restore();
  }

  function redraw() {
    var c = $("#mask-canvas");
    if (!c) return;
    var ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    strokes.forEach(function (s) { drawStroke(ctx, s, OVERLAY, null); });
  }

  // Render the strokes as a PNG and put it in the form's file input (or empty it).
  // Region mode: the mask, white = edit on black. Draw mode: the markup, the strokes
  // in their colours on a transparent PNG (OpenAI's markup). Never both.
  function updateMaskInput() {
    var mask = $("#mask"), markup = $("#markup"), c = $("#mask-canvas"), status = $("#mask-status");
    if (!mask || !c) return;
    var draw = maskMode === "draw";
    var dt = new DataTransfer();
    var painted = false;
    if (strokes.some(function (s) { return !s.erase; })) {
      var out = document.createElement("canvas");
      out.width = c.width;
      out.height = c.height;
      var ctx = out.getContext("2d");
      if (!draw) {
        ctx.fillStyle = "#000";
        ctx.fillRect(0, 0, out.width, out.height);
      }
      strokes.forEach(function (s) { drawStroke(ctx, s, "#fff", draw ? null : "#000"); });
      var data = ctx.getImageData(0, 0, out.width, out.height).data;
      for (var i = 0; i < data.length; i += 4) {
        if (draw ? data[i + 3] > 0 : data[i] > 0) { painted = true; break; }
      }
      if (painted) {
        var url = out.toDataURL("image/png");
        var bin = atob(url.slice(url.indexOf(",") + 1));
        var bytes = new Uint8Array(bin.length);
        for (var j = 0; j < bin.length; j++) bytes[j] = bin.charCodeAt(j);
        dt.items.add(new File([bytes], draw ? "markup.png" : "mask.png", { type: "image/png" }));
      }
    }
    var empty = new DataTransfer().files;
    mask.files = draw ? empty : dt.files;
    if (markup) markup.files = draw ? dt.files : empty;
    if (status) status.hidden = !painted;
    var text = $("#mask-status-text");
    if (text) text.textContent = draw ? "Drawing added" : "Region selected";
  }

  // Region mode limits the edit to the painted pixels; draw mode sends coloured strokes
  // that guide it (markup), for models that take them. Switching starts over.
  function setMode(mode) {
    var drawBtn = $("#mode-draw");
    if (mode === "draw" && drawBtn && drawBtn.disabled) return;
    if (mode !== maskMode) { maskMode = mode; clear(); }
    var region = $("#mode-region");
    if (region) region.setAttribute("aria-pressed", String(mode === "region"));
    if (drawBtn) drawBtn.setAttribute("aria-pressed", String(mode === "draw"));
    $all(".draw-only").forEach(function (el) { el.hidden = mode !== "draw"; });
    var title = $("#mask-editor-title"), hint = $("#mask-hint");
    if (title) title.textContent = mode === "draw" ? "Draw to guide the edit" : "Paint the region to change";
    if (hint) hint.textContent = mode === "draw"
      ? "Circle a spot or sketch a shape, then say what to do there (\u201cput a hat here\u201d). The whole image may change."
      : "Only the painted pixels can change; everything else stays exactly as it is. Then describe the change below.";
  }

  // ------------------------------------------------------------ the brush
  function canvasPoint(c, evt) {
    var r = c.getBoundingClientRect();
    return [(evt.clientX - r.left) * c.width / r.width, (evt.clientY - r.top) * c.height / r.height];
  }

  function brushSize() {
    var input = $("#brush-size");
    return input ? +input.value : 0;
  }

  function brushWidth(c) {
    var r = c.getBoundingClientRect();
    return Math.max(1, brushSize() * c.width / Math.max(1, r.width));
  }

  document.addEventListener("pointerdown", function (evt) {
    var c = evt.target;
    if (!c || c.id !== "mask-canvas" || evt.button !== 0) return;
    evt.preventDefault();
    c.setPointerCapture(evt.pointerId);
    var eraser = $("#mask-eraser");
    var color = $("#draw-color");
    drawing = { erase: !!eraser && eraser.getAttribute("aria-pressed") === "true",
                width: brushWidth(c), points: [canvasPoint(c, evt)],
                color: maskMode === "draw" && color ? color.value : null };
    strokes.push(drawing);
    redraw();
  });
  document.addEventListener("pointermove", function (evt) {
    var c = evt.target;
    if (c && c.id === "mask-canvas") showBrush(evt);
    if (!drawing || !c || c.id !== "mask-canvas") return;
    drawing.points.push(canvasPoint(c, evt));
    redraw();
  });
  function endStroke() {
    if (!drawing) return;
    drawing = null;
    updateMaskInput();
  }
  document.addEventListener("pointerup", endStroke);
  document.addEventListener("pointercancel", endStroke);

  // A ring that shows the brush size under the pointer.
  function showBrush(evt) {
    var c = $("#mask-canvas"), ring = $("#brush-ring");
    if (!c) return;
    if (!ring) {
      ring = document.createElement("span");
      ring.id = "brush-ring";
      ring.className = "brush-ring";
      ring.setAttribute("aria-hidden", "true");
      c.parentNode.appendChild(ring);
    }
    var size = brushSize();
    ring.style.width = size + "px";
    ring.style.height = size + "px";
    if (evt) {
      var r = c.getBoundingClientRect();
      ring.style.left = (evt.clientX - r.left) + "px";
      ring.style.top = (evt.clientY - r.top) + "px";
      ring.hidden = false;
    }
  }
  document.addEventListener("pointerout", function (evt) {
    if (evt.target && evt.target.id === "mask-canvas") { var ring = $("#brush-ring"); if (ring) ring.hidden = true; }
  });
  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "brush-size") showBrush(null);
  });

  // ------------------------------------------------------------ buttons and keys
  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("button") : null;
    if (!t) return;
    switch (t.id) {
      case "mask-toggle": if (isOpen()) close(); else open(); return;
      case "mask-edit": open(); return;
      case "mask-done": close(); var ins = $("#instruction"); if (ins) ins.focus(); return;
      case "mask-eraser":
        t.setAttribute("aria-pressed", t.getAttribute("aria-pressed") === "true" ? "false" : "true");
        return;
      case "mask-undo": strokes.pop(); redraw(); updateMaskInput(); return;
      case "mode-region": setMode("region"); return;
      case "mode-draw": setMode("draw"); return;
      case "mask-clear": case "mask-remove": clear(); return;
    }
  });

  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Escape" && isOpen() && !document.querySelector("dialog[open]")) close();
  });

  // A new main column (navigation inside the app): a new painter, nothing painted, region mode.
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "content") {
      strokes = [];
      drawing = null;
      maskMode = "region";
    }
  });

  window.Retouch = window.Retouch || {};
  window.Retouch.painter = {
    reset: reset, open: open, close: close, clear: clear, follow: follow, setMode: setMode,
    mode: function () { return maskMode; },
    strokes: function () { return strokes.length; },
    isOpen: isOpen
  };
})();

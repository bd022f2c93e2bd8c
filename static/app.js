// Retouch front-end glue. No inline scripts: the Content-Security-Policy forbids them.
// Everything is wired by event delegation on document, so it keeps working after
// htmx swaps parts of the page (the live conversation, the main column).
(function () {
  "use strict";

  var MAX_REFERENCES = 4; // app/services.py MAX_REFERENCES
  var IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"];

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

  // A message about what the composer holds (attachments): next to the composer when there is one.
  function composerError(text) {
    var alerts = window.Retouch && window.Retouch.composerAlerts;
    if (!(alerts && alerts.show(text))) flash(text);
  }

  // The pending bubble appears as soon as a turn is sent (before the upload ends);
  // the server's answer replaces it with the real, polled one (static/scroll.js brings it into view).
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var form = evt.detail.elt;
    if (!form || form.id !== "composer") return;
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
    var form = evt.detail.elt;
    if (form && form.id === "composer") $all("#conversation .turn.sending").forEach(function (el) { el.remove(); });
  });

  // After a form succeeds: clear the flash; after a send, clear the composer.
  // (Polling requests leave the flash alone, so an error stays readable.)
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!evt.detail.successful || evt.detail.xhr.status >= 400) return;
    if (!elt || elt.tagName !== "FORM") return;
    flash("");
    if (elt.id === "composer") {
      elt.reset();
      attached = [];
      syncAttachments();
      resetMask();
      closeMaskEditor();
      syncModelOptions();
      autogrow($("#instruction"));
    } else if (elt.id === "title-form") {
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
    if (target.id === "live") syncComposer();
    if (target.id === "content") {
      // A navigation inside the app: a new composer (nothing attached, nothing painted);
      // start at the top and move focus to the new page.
      attached = [];
      strokes = [];
      drawing = null;
      maskMode = "region";
      window.scrollTo(0, 0);
      target.focus({ preventScroll: true });
      initCompare();
      initDrawMode();
    }
    revealTreeNode();
    syncEvents();
    if (target.id === "share-panel" || (target.closest && target.closest("#share-panel"))) {
      var first = $("#share-url") || $("#share-create");
      if (first) first.focus();
    }
    tick();
  });

  // ------------------------------------------------------------ composer
  // Enter sends, Shift+Enter adds a line.
  document.addEventListener("keydown", function (evt) {
    var t = evt.target;
    if (t && t.id === "instruction" && evt.key === "Enter" && !evt.shiftKey && !evt.isComposing) {
      evt.preventDefault();
      if (t.value.trim()) t.form.requestSubmit(); // an empty one: static/composer_alerts.js says so
    }
    if (t && t.id === "thread-title" && evt.key === "Escape") {
      t.value = t.getAttribute("data-saved") || t.defaultValue;
      closeRename(true);
    }
    if (evt.key === "Escape" && !$("#mask-editor[hidden]") && $("#mask-editor")) {
      if (!document.querySelector("dialog[open]")) closeMaskEditor();
    }
  });

  // Apply the head-dependent bits the server renders with every live update (#composer-state,
  // templates/_composer_state.html): "Select region" needs an image, the placeholder says whether
  // the next turn creates or changes one, and an open painter follows a new head.
  function syncComposer() {
    var state = $("#composer-state"), toggle = $("#mask-toggle"), box = $("#instruction");
    if (!state) return;
    var hasHead = state.getAttribute("data-has-head") === "true";
    if (toggle) toggle.disabled = !hasHead;
    if (box) box.placeholder = state.getAttribute("data-placeholder") || box.placeholder;
    var m = maskParts();
    if (!hasHead) { closeMaskEditor(); return; }
    if (m.img && m.img.getAttribute("src") !== state.getAttribute("data-image")) {
      if (m.editor && !m.editor.hidden) openMaskEditor();  // repaint over the new head
      else {
        m.img.src = state.getAttribute("data-image");
        m.img.width = +state.getAttribute("data-width");
        m.img.height = +state.getAttribute("data-height");
      }
    }
  }

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

  function autogrow(el) {
    if (!el) return;
    el.style.height = "auto";
    el.style.height = Math.min(el.scrollHeight + 2, 240) + "px";
  }
  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.id === "instruction") autogrow(evt.target);
    if (evt.target && evt.target.id === "compare-range") setSplit(evt.target);
    if (evt.target && evt.target.id === "brush-size") showBrush(null);
  });

  // ------------------------------------------------------------ attachments
  // Reference images: chosen with the attach button, pasted, or dropped. The list
  // lives here and is copied into the form's file input, so the form posts them.
  var attached = [];

  function isImage(file) { return file && IMAGE_TYPES.indexOf(file.type) >= 0; }

  function syncAttachments() {
    var input = $("#attach-input");
    var list = $("#attachments");
    if (!input || !list) return;
    var dt = new DataTransfer();
    attached.forEach(function (f) { dt.items.add(f); });
    input.files = dt.files;
    $all("img", list).forEach(function (img) { URL.revokeObjectURL(img.src); });
    list.textContent = "";
    attached.forEach(function (f, i) {
      var li = document.createElement("li");
      li.className = "chip";
      var img = document.createElement("img");
      img.src = URL.createObjectURL(f);
      img.alt = "";
      img.width = 28;
      img.height = 28;
      var name = document.createElement("span");
      name.textContent = f.name || "pasted image";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "chip-remove";
      remove.setAttribute("data-remove", String(i));
      remove.setAttribute("aria-label", "Remove " + (f.name || "pasted image"));
      remove.textContent = "×";
      li.appendChild(img);
      li.appendChild(name);
      li.appendChild(remove);
      list.appendChild(li);
    });
  }

  function addAttachments(files) {
    var images = files.filter(isImage);
    if (images.length < files.length) composerError("Only JPEG, PNG and WebP images can be attached.");
    images.forEach(function (f) {
      if (attached.length < MAX_REFERENCES) attached.push(f);
      else composerError("You can attach up to " + MAX_REFERENCES + " reference images to one turn.");
    });
    syncAttachments();
  }

  // On the new-thread form, a pasted or dropped image becomes the photo.
  function setPhoto(file) {
    var input = $("#image");
    if (!input) return false;
    if (!isImage(file)) { flash("That file is not a JPEG, PNG or WebP image."); return true; }
    var dt = new DataTransfer();
    dt.items.add(file);
    input.files = dt.files;
    showPhotoPreview(input);
    return true;
  }

  function showPhotoPreview(input) {
    var preview = $("#image-preview");
    if (!preview) return;
    if (preview.src) URL.revokeObjectURL(preview.src);
    var file = input.files && input.files[0];
    if (file && isImage(file)) {
      preview.src = URL.createObjectURL(file);
      preview.alt = "Preview of " + (file.name || "the pasted image");
      preview.hidden = false;
    } else {
      preview.hidden = true;
      preview.removeAttribute("src");
    }
  }

  function takeFiles(files) {
    if (!files.length) return false;
    if ($("#image")) return setPhoto(files[0]);
    if ($("#composer")) { addAttachments(files); return true; }
    return false;
  }

  document.addEventListener("change", function (evt) {
    var t = evt.target;
    if (t && t.id === "attach-input") {
      var chosen = Array.prototype.slice.call(t.files);
      addAttachments(chosen);
    } else if (t && t.id === "image") {
      showPhotoPreview(t);
    }
  });

  document.addEventListener("paste", function (evt) {
    var files = Array.prototype.slice.call((evt.clipboardData && evt.clipboardData.files) || []);
    if (files.length && takeFiles(files)) evt.preventDefault();
  });

  function hasFiles(evt) {
    return evt.dataTransfer && Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") >= 0;
  }
  document.addEventListener("dragover", function (evt) {
    if (!hasFiles(evt) || !($("#image") || $("#composer"))) return;
    evt.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", function (evt) {
    if (evt.relatedTarget === null) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", function (evt) {
    document.body.classList.remove("dragging");
    if (!hasFiles(evt)) return;
    evt.preventDefault();
    takeFiles(Array.prototype.slice.call(evt.dataTransfer.files));
  });

  // ------------------------------------------------------------ mask editor
  // Strokes are kept as data so undo can redraw. The overlay canvas has the image's
  // own pixel size; the mask sent is a PNG of that size, white = edit, black = keep
  // (the JSON API's convention, app/imaging.py decode_mask).
  var strokes = [];
  var drawing = null;

  function maskParts() {
    return { editor: $("#mask-editor"), canvas: $("#mask-canvas"), img: $("#mask-image"),
             toggle: $("#mask-toggle"), eraser: $("#mask-eraser"), size: $("#brush-size") };
  }

  function openMaskEditor() {
    var m = maskParts();
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
        resetMask();
      }
    }
    m.editor.hidden = false;
    m.toggle.setAttribute("aria-pressed", "true");
    // Show the painter and the composer under it together.
    var composer = $("#composer");
    (composer || m.editor).scrollIntoView({ block: "end" });
  }

  function closeMaskEditor() {
    var m = maskParts();
    if (!m.editor) return;
    m.editor.hidden = true;
    if (m.toggle) m.toggle.setAttribute("aria-pressed", "false");
  }

  function resetMask() {
    strokes = [];
    drawing = null;
    redraw();
    updateMaskInput();
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

  var OVERLAY = "rgb(255, 45, 85)";

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
  var maskMode = "region";
  function setMaskMode(mode) {
    var drawBtn = $("#mode-draw");
    if (mode === "draw" && drawBtn && drawBtn.disabled) return;
    if (mode !== maskMode) { maskMode = mode; resetMask(); }
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

  // ------------------------------------------------------------ model options
  // Show only the models the chosen backend offers (.thread-page's data-backends), and
  // only the sizes, qualities and backgrounds the chosen model takes (the catalogue,
  // app/backends/openai_models.py, sent as .thread-page's data-models).
  function pageData(name) {
    var page = $(".thread-page[data-" + name + "]");
    if (!page) return null;
    try { return JSON.parse(page.getAttribute("data-" + name)); } catch (e) { return null; }
  }
  function backendInfo() {
    var select = $("#backend"), all = pageData("backends");
    return select && all ? all[select.value] || null : null;
  }
  function modelInfo() {
    var select = $("#model"), all = pageData("models");
    if (!select || select.disabled || !all) return null;
    return all[select.value] || null;
  }
  function offer(option, allowed) {
    option.hidden = !allowed;
    option.disabled = !allowed;
    if (!allowed && option.selected) option.parentNode.value = "";
  }
  function syncBackend() {
    var backend = backendInfo(), select = $("#model");
    if (!backend) return;
    var names = backend.models;
    $all("[data-needs-models]").forEach(function (el) { el.hidden = !names.length; el.disabled = !names.length; });
    if (select) {
      $all("#model option").forEach(function (o) { o.hidden = o.disabled = names.indexOf(o.value) < 0; });
      if (names.length && names.indexOf(select.value) < 0) select.value = names[0];
    }
    if (!names.length) {  // no model: the generic choices only
      $all("#size option[data-arbitrary]").forEach(function (o) { offer(o, false); });
      $all("#quality option").forEach(function (o) { if (o.value) offer(o, ["low", "medium", "high"].indexOf(o.value) >= 0); });
    }
  }
  function syncModelOptions() {
    syncBackend();
    var info = modelInfo(), backend = backendInfo();
    var label = $("#options-model");
    if (label) label.textContent = [backend ? backend.label : label.getAttribute("data-backend-label"),
                                    info ? info.name : ""].filter(Boolean).join(" \u00b7 ");
    var draw = $("#mode-draw");
    var markup = info ? info.markup && (!backend || backend.markup) : false;
    if (draw) {
      draw.disabled = !markup;
      draw.title = markup
        ? "Draw on the image to show the model where and what (markup)"
        : (backend && !backend.markup ? backend.label + " does not take drawings (markup); pick OpenAI images."
           : info ? info.name + " does not take drawings (markup); pick a model that does, such as gpt-image-2.5-sunburst."
           : "This backend does not take drawings to guide an edit; it edits exactly what the instruction says.");
      if (!markup && maskMode === "draw") setMaskMode("region");
    }
    if (!info) return;
    $all("#size option[data-arbitrary]").forEach(function (o) { offer(o, info.arbitrary_sizes); });
    $all("#quality option").forEach(function (o) { if (o.value) offer(o, info.qualities.indexOf(o.value) >= 0); });
    $all("#background option").forEach(function (o) { if (o.value) offer(o, info.backgrounds.indexOf(o.value) >= 0); });
  }
  document.addEventListener("change", function (evt) {
    if (evt.target && (evt.target.id === "model" || evt.target.id === "backend")) syncModelOptions();
  });

  function canvasPoint(c, evt) {
    var r = c.getBoundingClientRect();
    return [(evt.clientX - r.left) * c.width / r.width, (evt.clientY - r.top) * c.height / r.height];
  }

  function brushWidth(c) {
    var size = +($("#brush-size") || { value: 40 }).value;
    var r = c.getBoundingClientRect();
    return Math.max(1, size * c.width / Math.max(1, r.width));
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
    var size = +($("#brush-size") || { value: 40 }).value;
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

  // ------------------------------------------------------------ clicks
  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("button, [data-remove]") : null;
    var dialog;
    if (evt.target && evt.target.tagName === "DIALOG") {
      // A click on the backdrop closes the dialog.
      var r = evt.target.getBoundingClientRect();
      if (evt.clientX < r.left || evt.clientX > r.right || evt.clientY < r.top || evt.clientY > r.bottom) evt.target.close();
      return;
    }
    if (!t) return;
    switch (t.id) {
      case "attach": $("#attach-input").click(); return;
      case "mask-toggle":
        if ($("#mask-editor").hidden) openMaskEditor(); else closeMaskEditor();
        return;
      case "mask-edit": openMaskEditor(); return;
      case "mask-done": closeMaskEditor(); var ins = $("#instruction"); if (ins) ins.focus(); return;
      case "mask-eraser":
        t.setAttribute("aria-pressed", t.getAttribute("aria-pressed") === "true" ? "false" : "true");
        return;
      case "mask-undo": strokes.pop(); redraw(); updateMaskInput(); return;
      case "mode-region": setMaskMode("region"); return;
      case "mode-draw": setMaskMode("draw"); return;
      case "mask-clear": case "mask-remove": resetMask(); return;
      case "share-open":
        dialog = $("#share-dialog");
        if (dialog && !dialog.open) dialog.showModal();
        return;
      case "share-close": dialog = $("#share-dialog"); if (dialog) dialog.close(); return;
      case "share-copy": copyShareLink(); return;
      case "title-rename": openRename(); return;
    }
    if (t.hasAttribute("data-remove")) {
      attached.splice(+t.getAttribute("data-remove"), 1);
      syncAttachments();
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

  // ------------------------------------------------------------ live updates
  // While a turn is pending (and the tab is visible), listen to the thread's
  // server-sent events and refetch the live block on "ready" (in case a change
  // came while connecting) and on "changed". The stream is closed otherwise:
  // browsers allow six HTTP/1.1 connections per server, shared by all tabs.
  var source = null, sourceUrl = "";
  function syncEvents() {
    var page = $(".thread-page[data-events]");
    var url = page ? page.getAttribute("data-events") : "";
    var want = !!(url && $("#conversation[aria-busy=true]") && !document.hidden);
    if (source && (!want || url !== sourceUrl)) {
      source.close();
      source = null;
    }
    if (want && !source) {
      sourceUrl = url;
      source = new EventSource(url);
      source.addEventListener("ready", refreshLive);
      source.addEventListener("changed", refreshLive);
    }
  }
  function refreshLive() {
    var trigger = $("#live-refresh");
    if (trigger && window.htmx) window.htmx.trigger(trigger, "refresh");
  }
  document.addEventListener("visibilitychange", function () {
    var wasClosed = !source;
    syncEvents();
    if (wasClosed && source) refreshLive();
  });

  // ------------------------------------------------------------ earlier turns
  // A thread page shows its newest turns; the placeholder above them loads the earlier ones when it
  // scrolls into view. Watched only after the page has opened at its newest turn, so opening a long
  // thread does not load its history at once.
  var olderObserver = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) return;
      olderObserver.unobserve(e.target);
      htmx.trigger(e.target, "load-older");
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

  // Without a model that takes markup (the local backend), drawing to guide is not available.
  function initDrawMode() {
    syncModelOptions();
  }

  document.addEventListener("DOMContentLoaded", function () {
    initDrawMode();
    tick();
    syncEvents();
    revealTreeNode();
    // (static/scroll.js opens a thread at its newest turn.)
    watchOlderTurns(document);
    initCompare();
    autogrow($("#instruction"));
    var title = $("#thread-title");
    if (title) title.setAttribute("data-saved", title.value);
    // Open the share dialog after creating or revoking a link without htmx (/t/ID#share).
    if (location.hash === "#share") {
      var dialog = $("#share-dialog");
      if (dialog && !dialog.open) dialog.showModal();
    }
  });
})();

// Attachments: the reference images of a turn (the attach button, paste, drop) and, on the home page,
// the photo of a new thread (pasted or dropped onto the page). The reference list lives here and is
// copied into the composer's file input, so the form posts them.
//
// Limits are the server's, rendered into the page (templates/thread.html, templates/home.html):
// #composer's data-max-references / data-max-bytes / data-image-types, and #image's accept and
// data-max-bytes. Nothing here repeats them. reset() forgets the attached files; static/composer.js
// calls it after a send, and it runs by itself when htmx swaps the main column.
(function () {
  "use strict";

  var attached = [];

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function flash(text) {
    var el = document.getElementById("flash");
    if (el) el.textContent = text;
  }
  // A message about what the composer holds: next to the composer when there is one (static/composer_alerts.js).
  function composerError(text) {
    var alerts = window.Retouch && window.Retouch.composerAlerts;
    if (!(alerts && alerts.show(text))) flash(text);
  }

  // ------------------------------------------------------------ the server's limits
  function limits() {
    var form = $("#composer"), photo = $("#image");
    var holder = form || photo;
    var types = holder ? (holder.getAttribute("data-image-types") || holder.getAttribute("accept") || "") : "";
    return {
      references: form ? parseInt(form.getAttribute("data-max-references"), 10) || 0 : 0,
      bytes: holder ? parseInt(holder.getAttribute("data-max-bytes"), 10) || 0 : 0,
      types: types.split(",").map(function (t) { return t.trim(); }).filter(Boolean)
    };
  }

  var NAMES = { "image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP", "image/gif": "GIF", "image/avif": "AVIF" };
  function typeNames(types, conj) {
    var names = types.map(function (t) { return NAMES[t] || t.replace(/^image\//, "").toUpperCase(); });
    return names.length > 1 ? names.slice(0, -1).join(", ") + " " + conj + " " + names[names.length - 1] : names.join("");
  }

  function megabytes(bytes) {
    var mb = bytes / (1024 * 1024);
    if (mb < 1) return Math.max(1, Math.round(bytes / 1024)) + " KB";
    return (mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10) + " MB";
  }

  function isImage(file, lim) { return !!file && (!lim.types.length || lim.types.indexOf(file.type) >= 0); }
  function tooBig(file, lim) { return lim.bytes > 0 && file.size > lim.bytes; }

  // ------------------------------------------------------------ reference images (the composer)
  function sync() {
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

  function add(files) {
    var lim = limits();
    var images = files.filter(function (f) { return isImage(f, lim); });
    if (images.length < files.length) composerError("Only " + typeNames(lim.types, "and") + " images can be attached.");
    var small = images.filter(function (f) { return !tooBig(f, lim); });
    if (small.length < images.length) {
      composerError("Each image can be at most " + megabytes(lim.bytes) + "; " +
                    (images.length - small.length === 1 ? "one is" : (images.length - small.length) + " are") + " larger.");
    }
    var full = false;
    small.forEach(function (f) {
      if (!lim.references || attached.length < lim.references) attached.push(f);
      else full = true;
    });
    if (full) composerError("You can attach up to " + lim.references + " reference images to one turn.");
    sync();
  }

  function removeAt(i) {
    attached.splice(i, 1);
    sync();
  }

  // ------------------------------------------------------------ the photo (home page)
  // A pasted or dropped image becomes the new thread's photo.
  function setPhoto(file) {
    var input = $("#image");
    if (!input) return false;
    var lim = limits();
    if (!isImage(file, lim)) { flash("That file is not a " + typeNames(lim.types, "or") + " image."); return true; }
    if (tooBig(file, lim)) { flash("That image is larger than " + megabytes(lim.bytes) + "."); return true; }
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
    var lim = limits();
    if (file && isImage(file, lim) && tooBig(file, lim)) {
      flash("That image is larger than " + megabytes(lim.bytes) + ".");
      input.value = "";
      file = null;
    }
    if (file && isImage(file, lim)) {
      preview.src = URL.createObjectURL(file);
      preview.alt = "Preview of " + (file.name || "the pasted image");
      preview.hidden = false;
    } else {
      preview.hidden = true;
      preview.removeAttribute("src");
    }
  }

  function take(files) {
    if (!files.length) return false;
    if ($("#image")) return setPhoto(files[0]);
    if ($("#composer")) { add(files); return true; }
    return false;
  }

  // Forget the attached references (and their previews); the form's own reset empties the inputs.
  function reset() {
    attached = [];
    sync();
    var list = $("#attachments");
    if (list && !$("#attach-input")) list.textContent = "";
  }

  // ------------------------------------------------------------ wiring
  document.addEventListener("change", function (evt) {
    var t = evt.target;
    if (t && t.id === "attach-input") add(Array.prototype.slice.call(t.files));
    else if (t && t.id === "image") showPhotoPreview(t);
  });

  document.addEventListener("click", function (evt) {
    var t = evt.target.closest ? evt.target.closest("#attach, [data-remove]") : null;
    if (!t) return;
    if (t.id === "attach") { var input = $("#attach-input"); if (input) input.click(); }
    else if (t.closest("#attachments")) removeAt(+t.getAttribute("data-remove"));
  });

  document.addEventListener("paste", function (evt) {
    var files = Array.prototype.slice.call((evt.clipboardData && evt.clipboardData.files) || []);
    if (files.length && take(files)) evt.preventDefault();
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
    take(Array.prototype.slice.call(evt.dataTransfer.files));
  });

  // A new main column (navigation inside the app) has a new, empty composer.
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "content") { attached = []; }
  });

  window.Retouch = window.Retouch || {};
  window.Retouch.attachments = {
    reset: reset,
    add: add,
    files: function () { return attached.slice(); },
    limits: limits
  };
})();

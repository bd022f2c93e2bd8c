/* The home page (templates/home.html): starter prompts fill the description field, and the
   large drop zone takes a photo (dropped, or chosen with a click or Enter/Space) and submits
   the existing new-thread form with it. No inline script (CSP). */
(function () {
  "use strict";
  // The accepted types and the byte limit are the server's, rendered on #home-drop-input
  // (accept, data-max-bytes; templates/home.html).
  function accepted() {
    var input = $("#home-drop-input") || $("#image");
    return input ? (input.getAttribute("accept") || "").split(",").map(function (t) { return t.trim(); }).filter(Boolean) : [];
  }
  function maxBytes() {
    var input = $("#home-drop-input") || $("#image");
    return input ? parseInt(input.getAttribute("data-max-bytes"), 10) || 0 : 0;
  }

  function $(sel) { return document.querySelector(sel); }

  document.addEventListener("click", function (evt) {
    var starter = evt.target.closest && evt.target.closest("button[data-starter]");
    if (starter) {
      var prompt = $("#prompt");
      if (!prompt) return;
      prompt.value = starter.getAttribute("data-starter");
      prompt.dispatchEvent(new Event("input", { bubbles: true }));
      prompt.focus();
      prompt.setSelectionRange(prompt.value.length, prompt.value.length);
      prompt.scrollIntoView({ block: "center" });
      return;
    }
    var zone = evt.target.closest && evt.target.closest("#home-drop");
    if (zone) {
      var input = $("#home-drop-input");
      if (input) input.click();
    }
  });

  function say(text) {
    var status = $("#home-drop-status");
    if (status) status.textContent = text;
  }

  // Put ``file`` into the new-thread form's photo field and submit that form (htmx posts it).
  function start(file) {
    var form = $("#new-thread"), photo = $("#image");
    if (!form || !photo || !file) return;
    var types = accepted();
    if (types.length && types.indexOf(file.type) < 0) {
      say("That file is not a JPEG, PNG or WebP image. Choose another.");
      return;
    }
    var limit = maxBytes();
    if (limit && file.size > limit) {
      say("That image is larger than " + (limit < 1048576 ? Math.max(1, Math.round(limit / 1024)) + " KB"
          : Math.round(limit / 1048576 * 10) / 10 + " MB") + ". Choose a smaller one.");
      return;
    }
    var dt = new DataTransfer();
    dt.items.add(file);
    photo.files = dt.files;
    photo.dispatchEvent(new Event("change", { bubbles: true }));  // the form's own preview
    say("Uploading " + (file.name || "the photo") + "\u2026");
    var zone = $("#home-drop");
    if (zone) zone.setAttribute("aria-busy", "true");
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }

  document.addEventListener("change", function (evt) {
    if (evt.target && evt.target.id === "home-drop-input" && evt.target.files.length) {
      start(evt.target.files[0]);
      evt.target.value = "";
    }
  });

  function hasFiles(evt) {
    return evt.dataTransfer && Array.prototype.indexOf.call(evt.dataTransfer.types, "Files") >= 0;
  }
  function inZone(evt) { return evt.target && evt.target.closest && evt.target.closest("#home-drop"); }

  document.addEventListener("dragover", function (evt) {
    var zone = inZone(evt);
    if (!zone || !hasFiles(evt)) return;
    evt.preventDefault();
    evt.dataTransfer.dropEffect = "copy";
    zone.classList.add("is-over");
  });
  document.addEventListener("dragleave", function (evt) {
    var zone = inZone(evt);
    if (zone && !zone.contains(evt.relatedTarget)) zone.classList.remove("is-over");
  });
  document.addEventListener("drop", function (evt) {
    var zone = inZone(evt);
    if (!zone || !hasFiles(evt)) return;
    // Handled here, not by app.js's page-wide drop (which only fills the photo field).
    evt.preventDefault();
    evt.stopPropagation();
    zone.classList.remove("is-over");
    document.body.classList.remove("dragging");
    start(evt.dataTransfer.files[0]);
  }, true);
})();

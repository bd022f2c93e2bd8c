// The backend and model pickers of the composer's options (templates/_options.html): show only the
// models the chosen backend offers, and only the sizes, qualities and backgrounds the chosen model takes.
// Both come from the server, as .thread-page's data-backends and data-models (the catalogue,
// app/backends/openai_models.py). reset() applies them again (after the form's own reset, a send, a new
// main column); "Draw to guide" is offered only with a model that takes markup (static/painter.js).
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

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
      var painter = window.Retouch && window.Retouch.painter;
      if (!markup && painter && painter.mode() === "draw") painter.setMode("region");
    }
    if (!info) return;
    $all("#size option[data-arbitrary]").forEach(function (o) { offer(o, info.arbitrary_sizes); });
    $all("#quality option").forEach(function (o) { if (o.value) offer(o, info.qualities.indexOf(o.value) >= 0); });
    $all("#background option").forEach(function (o) { if (o.value) offer(o, info.backgrounds.indexOf(o.value) >= 0); });
  }
  document.addEventListener("change", function (evt) {
    if (evt.target && (evt.target.id === "model" || evt.target.id === "backend")) syncModelOptions();
  });


  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "content") syncModelOptions();
  });
  document.addEventListener("DOMContentLoaded", syncModelOptions);

  window.Retouch = window.Retouch || {};
  window.Retouch.pickers = { reset: syncModelOptions, sync: syncModelOptions };
})();

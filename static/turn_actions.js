// Turn actions (templates/_turn.html): a decline's suggestions fill the composer,
// and the edit form of an instruction bubble (swapped in by htmx) gets the focus
// and closes on Escape. No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";

  // A suggestion button (data-fill) puts its text in the composer, ready to send or change.
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-fill]") : null;
    if (!button) return;
    var box = document.getElementById("instruction");
    if (!box) return;
    evt.preventDefault();
    box.value = button.getAttribute("data-fill");
    box.dispatchEvent(new Event("input", { bubbles: true })); // the composer grows to fit
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });

  // Escape in an instruction's edit form cancels it (its Cancel button swaps the turn back).
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || !evt.target.closest) return;
    var form = evt.target.closest("form.edit-instruction");
    var cancel = form && form.querySelector("[data-edit-cancel]");
    if (!cancel) return;
    evt.preventDefault();
    cancel.click();
  });

  // Enter sends the edit form (as in the composer); Shift+Enter adds a line.
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Enter" || evt.shiftKey || evt.isComposing || !evt.target.closest) return;
    var form = evt.target.closest("form.edit-instruction");
    if (!form || evt.target.tagName !== "TEXTAREA") return;
    evt.preventDefault();
    form.requestSubmit();
  });

  // The edit form appears with its text selected at the end, ready to change.
  document.addEventListener("htmx:load", function (evt) {
    var root = evt.target;
    var box = root && root.querySelector ? root.querySelector("form.edit-instruction textarea") : null;
    if (!box) return;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });
})();

// A thread opens at its newest turn (see scroll.js), and this puts it there before the first frame.
// The thread page loads it parser-blocking right after the composer, and its <head> holds
// <link rel="expect" href="#opened-at-newest" blocking="render">: the browser paints nothing until the
// element after this script is parsed (HTML spec, "rel=expect"). So no frame, and no lazy image near
// the top of a long conversation, is ever laid out at the top first: only the previews near the newest
// turns load. Browsers without rel=expect behave as before (scroll.js scrolls at DOMContentLoaded).
(function () {
  "use strict";
  if (!location.hash && document.querySelector("#conversation .turn")) {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }
})();

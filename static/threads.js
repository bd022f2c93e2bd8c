// Thread management in the browser: the delete confirmation, the undo notice,
// the viewer's time zone for the sidebar's date groups, and the phone drawer.
// No inline script (the CSP forbids it): everything is wired here, by delegation,
// so it survives htmx swaps.
(function () {
  "use strict";

  const PHONE = window.matchMedia("(max-width: 760px)");

  // ---- time zone: the server groups threads by the viewer's calendar day
  function rememberTimeZone() {
    let zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    if (!zone) return;
    const had = document.cookie.split("; ").find((c) => c.startsWith("retouch_tz="));
    if (had && decodeURIComponent(had.slice(11)) === zone) return;
    document.cookie = "retouch_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    const search = document.getElementById("thread-search");
    if (search && window.htmx) window.htmx.trigger(search, "search"); // regroup in that zone now
  }

  // ---- delete: confirm in a <dialog>, never window.confirm
  document.addEventListener("click", (event) => {
    const open = event.target.closest("#delete-open");
    if (open) {
      const dialog = document.getElementById("delete-dialog");
      if (dialog && !dialog.open) dialog.showModal();
    }
  });

  // ---- the "Thread deleted. Undo" notice: gone when the undo window is
  function armUndoNotice() {
    const notice = document.getElementById("undo-notice");
    if (!notice || notice.dataset.armed) return;
    notice.dataset.armed = "1";
    const url = new URL(window.location.href);
    if (url.searchParams.has("deleted")) {
      url.searchParams.delete("deleted");
      history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    }
    const seconds = parseFloat(notice.dataset.seconds || "0");
    window.setTimeout(() => notice.remove(), Math.max(0, seconds * 1000));
  }

  // ---- the phone drawer (the sidebar, opened from the header)
  function drawerParts() {
    return {
      toggle: document.getElementById("threads-toggle"),
      sidebar: document.getElementById("sidebar"),
      backdrop: document.getElementById("drawer-backdrop"),
    };
  }

  function setDrawer(open, { focus = true } = {}) {
    const { toggle, sidebar, backdrop } = drawerParts();
    if (!toggle || !sidebar) return;
    const wasOpen = sidebar.classList.contains("open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    sidebar.classList.toggle("open", open);
    document.body.classList.toggle("drawer-open", open);
    if (backdrop) backdrop.hidden = !open;
    if (!focus) return;
    if (open) {
      const search = document.getElementById("thread-search");
      (search || sidebar).focus();
    } else if (wasOpen) {
      toggle.focus();
    }
  }

  document.addEventListener("click", (event) => {
    if (event.target.closest("#threads-toggle")) {
      const { sidebar } = drawerParts();
      setDrawer(!(sidebar && sidebar.classList.contains("open")));
    } else if (event.target.closest("#threads-close") || event.target.closest("#drawer-backdrop")) {
      setDrawer(false);
    } else if (event.target.closest("#sidebar a") && PHONE.matches) {
      setDrawer(false, { focus: false });
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const { sidebar } = drawerParts();
    if (sidebar && sidebar.classList.contains("open")) {
      event.preventDefault();
      setDrawer(false);
    }
  });

  PHONE.addEventListener("change", () => setDrawer(false, { focus: false }));

  function init() {
    armUndoNotice();
  }

  document.addEventListener("DOMContentLoaded", () => { rememberTimeZone(); init(); });
  document.addEventListener("htmx:afterSettle", init);
})();

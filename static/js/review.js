// Keyboard review: digits pick a class, Enter accepts, S skips, U undoes, F flags, G guideline,
// H history, ? help. Keys are ignored while typing in a field, while a dialog is open, or while a request is
// in flight (so a double press never submits twice).
(function () {
  "use strict";
  // Busy from the request until the new pane is settled: htmx wires up swapped-in forms only
  // at settle time, so a key pressed in between would submit a form natively (a full reload).
  let busy = false;
  function setBusy(value) {
    busy = value;
    document.body.dataset.reviewBusy = value ? "1" : "0";
  }
  document.addEventListener("htmx:beforeRequest", () => setBusy(true));
  document.addEventListener("htmx:afterSettle", () => setBusy(false));
  document.addEventListener("htmx:afterRequest", (event) => {
    // No swap follows a failed request (network error, 5xx): free the keys at once.
    if (event.detail.failed || !event.detail.successful) setBusy(false);
  });

  function pane() { return document.getElementById("review-pane"); }
  function press(selector) {
    const root = pane();
    const button = root && root.querySelector(selector);
    if (!button || button.disabled) return false;
    button.click();
    return true;
  }
  function toggleHelp() {
    const dialog = document.getElementById("keys-help");
    if (!dialog) return;
    if (dialog.open) dialog.close(); else dialog.showModal();
  }

  document.addEventListener("DOMContentLoaded", () => {
    setBusy(false);
    const show = document.getElementById("show-keys");
    if (show) show.addEventListener("click", toggleHelp);
    // Closing the help (Esc) can leave focus on its Close button; Enter would then press that
    // button instead of accepting the prediction.
    const help = document.getElementById("keys-help");
    if (help) {
      help.addEventListener("close", () => {
        if (help.contains(document.activeElement)) document.activeElement.blur();
      });
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const key = event.key;
    // Focus left inside a closed dialog does not count as a focused control.
    const stale = target.closest && target.closest("dialog:not([open])");
    if (key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (document.querySelector("dialog[open]")) return;
    if (busy) { event.preventDefault(); return; }
    let handled = false;
    if (/^[1-9]$/.test(key)) {
      handled = press('[data-key="' + key + '"]');
    } else if (key === "Enter") {
      // Enter on a focused button or link keeps its normal meaning.
      if (!stale && target.closest && target.closest("button, a, summary")) return;
      handled = press('[data-key="Enter"]');
    } else if (key === "s" || key === "S") {
      handled = press('[data-key="s"]');
    } else if (key === "u" || key === "U") {
      handled = press('[data-key="u"]');
    } else if (key === "f" || key === "F") {
      const details = document.getElementById("flag-details");
      if (details) {
        details.open = true;
        const note = details.querySelector("textarea");
        if (note) note.focus();
        handled = true;
      }
    } else if (key === "h" || key === "H") {
      const history = document.getElementById("history");
      if (history) {
        history.open = !history.open;
        if (history.open) history.scrollIntoView({ block: "nearest" });
        handled = true;
      }
    } else if (key === "g" || key === "G") {
      const guideline = document.querySelector("details.guideline");
      if (guideline) { guideline.open = !guideline.open; handled = true; }
    }
    if (handled) event.preventDefault();
  });
})();

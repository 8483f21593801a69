// Site-wide behaviour: move focus to the new content after an HTMX swap of the review pane
// (screen readers announce it; keyboard users keep their place).
document.addEventListener("htmx:afterSwap", (event) => {
  const pane = document.getElementById("review-pane");
  if (pane && (event.detail.target === pane || event.detail.target?.id === "review-pane")) {
    const heading = pane.querySelector("h1");
    if (heading) heading.focus({ preventScroll: false });
  }
});

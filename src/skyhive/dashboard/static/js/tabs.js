// ARIA tabs: click or arrow keys to switch, one panel shown at a time; onShow(f) calls f with
// the panel's id each time one is shown.

export function setupTabs(tablist) {
  const tabs = [...tablist.querySelectorAll("[role=tab]")];
  let current = tabs.find((t) => t.getAttribute("aria-selected") === "true").getAttribute("aria-controls");
  const listeners = [];

  function show(panelId, focus = false) {
    for (const tab of tabs) {
      const on = tab.getAttribute("aria-controls") === panelId;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
      if (on && focus) tab.focus();
    }
    current = panelId;
    document.body.classList.toggle("map-picking", panelId === "panel-deliveries");
    for (const listener of listeners) listener(panelId);
  }

  for (const [i, tab] of tabs.entries()) {
    tab.addEventListener("click", () => show(tab.getAttribute("aria-controls")));
    tab.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (step) {
        const next = tabs[(i + step + tabs.length) % tabs.length];
        show(next.getAttribute("aria-controls"), true);
      }
    });
  }
  return { show, current: () => current, onShow: (listener) => listeners.push(listener) };
}

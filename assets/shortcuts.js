// Triage keyboard shortcuts: p = poison, c = clean, u = unsure, z = undo, n = next pending.
// Ignored while typing in a text field, so notes and search boxes keep every key; Esc leaves the field,
// so the keys work again (the hint under the decision bar says so).
() => {
  const keys = { p: "tcap-poison", c: "tcap-clean", u: "tcap-unsure", z: "tcap-undo", n: "tcap-next" };
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
    if (typing && event.key === "Escape") { target.blur(); return; }
    if (typing) return;
    const id = keys[event.key.toLowerCase()];
    const button = id && document.getElementById(id);
    if (button) { event.preventDefault(); button.click(); }
  });
}

// Records every input event the tests look at into window.events.
window.events = [];
const record = (e) => window.events.push({
  type: e.type, target: e.target.id || e.target.tagName, t: performance.now(),
  button: e.button, buttons: e.buttons, detail: e.detail, x: e.clientX, y: e.clientY,
  key: e.key, code: e.code, location: e.location,
  shift: e.shiftKey, ctrl: e.ctrlKey, alt: e.altKey, meta: e.metaKey,
  dx: e.deltaX, dy: e.deltaY,
});
for (const type of ["mousedown", "mouseup", "click", "dblclick", "contextmenu", "auxclick",
                    "mousemove", "keydown", "keyup", "wheel"]) {
  document.addEventListener(type, record, { capture: true, passive: true });
}
document.addEventListener("contextmenu", (e) => e.preventDefault());
window.eventsOf = (type) => window.events.filter((e) => e.type === type);

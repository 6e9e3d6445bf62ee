// Small progressive enhancements shared by every page. No inline scripts (CSP).
(function () {
  "use strict";
  // Show UTC timestamps in the reader's local time zone.
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) { return; }
    el.title = el.textContent;
    el.textContent = d.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit"
    });
  });
  // Ask before destructive actions: buttons carrying data-confirm.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest("[data-confirm]");
    if (btn && !window.confirm(btn.getAttribute("data-confirm"))) {
      ev.preventDefault();
    }
  });
})();
// Forms that take a local date-time carry the browser's offset from UTC (minutes west).
document.querySelectorAll("input[name$=tz_offset]").forEach(function (el) {
  el.value = String(new Date().getTimezoneOffset());
});
// Links to the OHIF viewer (it draws with WebGL2) stay hidden in browsers without WebGL2:
// the portal's own viewer, beside them, is the fallback.
(function () {
  var links = document.querySelectorAll("[data-needs-webgl2]");
  if (!links.length) { return; }
  var ok = false;
  try { ok = !!document.createElement("canvas").getContext("webgl2"); } catch (e) { ok = false; }
  links.forEach(function (el) { el.hidden = !ok; });
})();

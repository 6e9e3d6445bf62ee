// A background export's page: poll its status until it is done or failed.
(function () {
  "use strict";
  var box = document.getElementById("export-job");
  if (!box) { return; }
  var bar = document.getElementById("export-progress");
  var state = document.getElementById("export-state");
  var link = document.getElementById("export-download");
  var url = box.getAttribute("data-status-url");

  function number(n) { return (n || 0).toLocaleString("en-US"); }

  function render(s) {
    bar.value = s.progress;
    state.setAttribute("data-status", s.status);
    if (s.status === "queued") {
      state.textContent = "Waiting for the job worker…";
    } else if (s.status === "running") {
      state.textContent = "Being made: " + s.progress + " %" + (s.rows_total ?
        " (" + number(s.rows_done) + " of " + number(s.rows_total) + " entries)" : "") + ".";
    } else if (s.status === "done") {
      state.textContent = "Ready.";
      link.href = s.download_url;
      link.hidden = false;
    } else {
      state.textContent = "Failed: " + (s.message || "see the server log.");
    }
    return s.status === "queued" || s.status === "running";
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (s) { if (render(s)) { window.setTimeout(poll, 1000); } })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  var initial = state.getAttribute("data-status");
  if (initial === "queued" || initial === "running") { window.setTimeout(poll, 1000); }
})();

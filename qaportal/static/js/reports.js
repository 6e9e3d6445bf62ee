// Reports page: preview in a new tab, and make the PDF with a progress indicator.
(function () {
  "use strict";
  var form = document.getElementById("report-form");
  if (!form) { return; }
  var previewBtn = document.getElementById("preview-btn");
  var exportBtn = document.getElementById("export-btn");
  var status = document.getElementById("export-status");

  function params(withToken) {
    var data = new FormData(form);
    if (!withToken) { data.delete("csrf_token"); }
    return data;
  }

  function show(html, cls) {
    status.hidden = false;
    status.className = "export-status " + (cls || "");
    status.innerHTML = "";
    status.appendChild(html);
  }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text) { node.textContent = text; }
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  // Preview: the same parameters as a GET, without the CSRF token in the address.
  previewBtn.addEventListener("click", function (ev) {
    ev.preventDefault();
    var query = new URLSearchParams(params(false)).toString();
    window.open(previewBtn.getAttribute("formaction") + "?" + query, "_blank");
  });

  // A long period: the job worker makes the PDF; follow its status until it is ready.
  function follow(job) {
    var out = el("div");
    var bar = el("progress", "", { max: "100", value: String(job.progress || 0), "class": "export-progress", "aria-label": "Progress" });
    var text = el("span", "Made in the background (a long period). Waiting for the job worker… ");
    out.appendChild(bar);
    out.appendChild(text);
    out.appendChild(el("a", "Open its page", { href: job.job_url, id: "job-link" }));
    show(out, "busy");
    function poll() {
      fetch(job.status_url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          bar.value = s.progress;
          if (s.status === "done") {
            var done = el("div");
            done.appendChild(el("span", "Ready. "));
            done.appendChild(el("a", "Download PDF", { href: s.download_url, id: "download-link", "class": "btn btn-primary" }));
            show(done, "done");
          } else if (s.status === "failed") {
            show(el("strong", "The report could not be made: " + (s.message || "see the server log.")), "failed");
          } else {
            text.textContent = s.status === "running" ? "Being made in the background: " + s.progress + " %. " : "Waiting for the job worker… ";
            window.setTimeout(poll, 1000);
          }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  form.addEventListener("submit", function (ev) {
    if (ev.submitter && ev.submitter !== exportBtn) { return; }
    ev.preventDefault();
    exportBtn.disabled = true;
    var started = Date.now();
    var box = el("div");
    box.appendChild(el("span", "", { "class": "spinner", "aria-hidden": "true" }));
    var label = el("span", "Rendering the PDF…");
    box.appendChild(label);
    show(box, "busy");
    var timer = window.setInterval(function () {
      label.textContent = "Rendering the PDF… " + Math.round((Date.now() - started) / 1000) + " s";
    }, 500);
    // getAttribute: a field named "action" shadows form.action.
    fetch(form.getAttribute("action"), {
      method: "POST", body: params(true), credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (resp) {
      return resp.json().catch(function () { return { error: "The server answered " + resp.status + "." }; })
        .then(function (body) { return { ok: resp.ok, queued: resp.status === 202, body: body }; });
    }).then(function (res) {
      var out = el("div");
      if (res.queued) {
        window.clearInterval(timer);
        follow(res.body);
        return;
      }
      if (res.ok) {
        out.appendChild(el("span", "Ready: " + res.body.document_id + " — " + res.body.pages +
          " page" + (res.body.pages === 1 ? "" : "s") + ", " + res.body.seconds + " s. "));
        out.appendChild(el("a", "Download PDF", { href: res.body.download_url, id: "download-link", "class": "btn btn-primary" }));
        show(out, "done");
      } else {
        out.appendChild(el("strong", res.body.error || "The report could not be made."));
        var fields = res.body.fields || {};
        var list = el("ul");
        Object.keys(fields).forEach(function (name) {
          fields[name].forEach(function (msg) {
            var input = form.querySelector("[name='" + name + "']");
            var labelText = input && input.labels && input.labels.length ? input.labels[0].textContent.replace("*", "").trim() + ": " : "";
            list.appendChild(el("li", labelText + msg));
          });
        });
        if (list.childNodes.length) { out.appendChild(list); }
        show(out, "failed");
      }
    }).catch(function () {
      show(el("span", "The connection failed; please try again."), "failed");
    }).finally(function () {
      window.clearInterval(timer);
      exportBtn.disabled = false;
    });
  });
})();

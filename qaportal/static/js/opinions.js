// Second opinions: live countdowns, autosaved drafts, form toggles. No inline scripts (CSP).
(function () {
  "use strict";

  // Countdown text, matching the server's opinion_countdown filter.
  function countdownText(ms, lead) {
    var late = ms < 0, minutes = Math.floor(Math.abs(ms) / 60000);
    var d = Math.floor(minutes / 1440), h = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    var text = d ? d + " d " + h + " h" : h ? h + " h " + (m < 10 ? "0" : "") + m + " min" : m + " min";
    if (lead) { return late ? "Overdue by " + text : "Due in " + text; }
    return late ? "overdue " + text : text;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      var left = due - now;
      el.textContent = countdownText(left, el.hasAttribute("data-lead"));
      if (left < 0) {
        el.classList.add("countdown-overdue");
        var row = el.closest("tr");
        if (row) { row.classList.remove("sla-ok", "sla-approaching"); row.classList.add("sla-overdue"); }
      }
    });
  }
  if (document.querySelector("[data-due]")) {
    tick();
    window.setInterval(tick, 15000);
  }

  // Request form: the payer's criteria only matter for a coverage review; the recipient
  // choice enables the matching select.
  var requestForm = document.getElementById("request-form");
  if (requestForm) {
    var criteria = document.getElementById("criteria-field");
    var syncType = function () {
      var checked = requestForm.querySelector("input[name=request_type]:checked");
      if (criteria) { criteria.hidden = !(checked && checked.value === "coverage_review"); }
    };
    requestForm.querySelectorAll("input[name=request_type]").forEach(function (el) {
      el.addEventListener("change", syncType);
    });
    syncType();
  }

  // Opinion draft: post the fields as JSON every few seconds when they changed.
  var form = document.getElementById("opinion-form");
  if (form && form.getAttribute("data-autosave-url")) {
    var url = form.getAttribute("data-autosave-url");
    var every = Math.max(2, parseInt(form.getAttribute("data-autosave-seconds"), 10) || 5) * 1000;
    var status = document.getElementById("autosave-status");
    var tokenField = form.querySelector("input[name=csrf_token]");
    var names = ["findings", "impression", "agreement", "recommendations",
                 "coverage_answer", "coverage_text"];
    var collect = function () {
      var data = {};
      names.forEach(function (name) {
        var els = form.querySelectorAll("[name=" + name + "]");
        if (!els.length) { return; }
        if (els[0].type === "radio") {
          var checked = form.querySelector("[name=" + name + "]:checked");
          data[name] = checked ? checked.value : null;
        } else {
          data[name] = els[0].value;
        }
      });
      return JSON.stringify(data);
    };
    var last = collect(), busy = false;
    var save = function () {
      var body = collect();
      if (busy || body === last) { return; }
      busy = true;
      fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json",
                  "X-CSRFToken": tokenField ? tokenField.value : ""},
        body: body
      }).then(function (resp) {
        return resp.json().then(function (json) { return {ok: resp.ok, json: json}; });
      }).then(function (res) {
        if (res.ok) {
          last = body;
          var when = res.json.saved_at ? new Date(res.json.saved_at) : new Date();
          status.textContent = "Draft saved " + when.toLocaleTimeString();
          status.classList.remove("autosave-error");
        } else {
          status.textContent = "Not saved: " + (res.json.error || "error");
          status.classList.add("autosave-error");
        }
      }).catch(function () {
        status.textContent = "Not saved: the portal cannot be reached. Keep this page open.";
        status.classList.add("autosave-error");
      }).then(function () { busy = false; });
    };
    window.setInterval(save, every);
    form.addEventListener("input", function () { status.textContent = "Unsaved changes…"; });
  }
})();

// Study upload: files, folders (picker or drag-and-drop) and zips, sent in parts with progress.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var fileInput = document.getElementById("file-input");
  var folderInput = document.getElementById("folder-input");
  var dropzone = document.getElementById("dropzone");
  var selection = document.getElementById("selection");
  var progressWrap = document.getElementById("progress");
  var bar = document.querySelector("#overall-progress .bar");
  var progressBox = document.getElementById("overall-progress");
  var progressText = document.getElementById("progress-text");
  var fileList = document.getElementById("file-list");
  var button = document.getElementById("upload-button");
  var chunkBytes = parseInt(form.dataset.chunkBytes, 10) || 64 * 1048576;
  var maxRequest = parseInt(form.dataset.maxRequest, 10) || 1073741824;
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var MAX_FILES_PER_REQUEST = 200;
  // Parts in flight at once: the server stores each part in its own worker, in parallel.
  var PARALLEL_PARTS = 2;
  var MAX_LISTED = 2000;
  // Files the browser itself did not get stored, reported to the summary at the end.
  var MAX_REPORTED = 1000;
  var chosen = [];  // {file, name}

  function label(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function mb(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

  function addFiles(list) {
    for (var i = 0; i < list.length; i++) {
      // A dropped entry is {file, name: its path}; a picked File has a name of its own,
      // and a folder picker's File its path in webkitRelativePath.
      var f = list[i].file || list[i];
      var name = list[i].file ? list[i].name : (f.webkitRelativePath || f.name);
      chosen.push({ file: f, name: name });
    }
    var total = chosen.reduce(function (s, c) { return s + c.file.size; }, 0);
    selection.textContent = chosen.length ? label(chosen.length, "file") + " chosen, " + mb(total) + "." : "No file chosen.";
  }

  fileInput.addEventListener("change", function () { addFiles(fileInput.files); });
  folderInput.addEventListener("change", function () { addFiles(folderInput.files); });

  // Drag and drop, including whole folders (walked through the entries API).
  function walk(entry, path, out) {
    return new Promise(function (resolve) {
      if (entry.isFile) {
        entry.file(function (f) { out.push({ file: f, name: path + f.name }); resolve(); }, function () { resolve(); });
      } else if (entry.isDirectory) {
        var reader = entry.createReader();
        var all = [];
        var readMore = function () {
          reader.readEntries(function (entries) {
            if (!entries.length) {
              Promise.all(all.map(function (e) { return walk(e, path + entry.name + "/", out); })).then(resolve);
            } else { all = all.concat(Array.prototype.slice.call(entries)); readMore(); }
          }, function () { resolve(); });
        };
        readMore();
      } else { resolve(); }
    });
  }
  ["dragenter", "dragover"].forEach(function (t) {
    dropzone.addEventListener(t, function (e) { e.preventDefault(); dropzone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    dropzone.addEventListener(t, function () { dropzone.classList.remove("over"); });
  });
  dropzone.addEventListener("drop", function (e) {
    e.preventDefault();
    var items = e.dataTransfer.items || [];
    var entries = [];
    for (var i = 0; i < items.length; i++) {
      var entry = items[i].webkitGetAsEntry ? items[i].webkitGetAsEntry() : null;
      if (entry) { entries.push(entry); }
    }
    if (!entries.length) { addFiles(e.dataTransfer.files); return; }  // no entries API
    var out = [];
    Promise.all(entries.map(function (en) { return walk(en, "", out); }))
      .then(function () { addFiles(out); });
  });

  function chunks(items) {
    var result = [], current = [], size = 0;
    items.forEach(function (it) {
      if (current.length && (size + it.file.size > chunkBytes || current.length >= MAX_FILES_PER_REQUEST)) {
        result.push(current); current = []; size = 0;
      }
      current.push(it); size += it.file.size;
    });
    if (current.length) { result.push(current); }
    return result;
  }

  // One row per file: its name and status, and its own progress bar.
  function row(name) {
    var li = document.createElement("li");
    li.className = "queued";
    var text = document.createElement("span");
    text.className = "file-status";
    text.textContent = name + " — waiting";
    var meter = document.createElement("progress");
    meter.className = "file-progress";
    meter.max = 100;
    meter.value = 0;
    meter.setAttribute("aria-label", name);
    li.appendChild(text);
    li.appendChild(meter);
    li.meter = meter;
    li.text = text;
    if (fileList.children.length < MAX_LISTED) { fileList.appendChild(li); }
    return li;
  }

  function setStatus(li, status, text) {
    li.className = status;
    li.text.textContent = text;
    if (status === "rejected" || status === "conflict") { li.meter.hidden = true; }
    else if (status !== "queued" && status !== "uploading") { li.meter.value = 100; }
  }

  // Spread a part's bytes sent over its files in order (the multipart framing is small).
  function fileProgress(chunk, rows, loaded) {
    var offset = 0;
    chunk.forEach(function (it) {
      var size = it.file.size || 1;
      var sent = Math.max(0, Math.min(size, loaded - offset));
      rows[it.index].meter.value = Math.round(100 * sent / size);
      offset += it.file.size;
    });
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { throw new Error(j.error || ("HTTP " + r.status)); }
        return j;
      });
    });
  }

  function sendChunk(url, chunk, onProgress) {
    return new Promise(function (resolve) {
      var data = new FormData();
      chunk.forEach(function (it) { data.append("files", it.file, it.name); });
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { onProgress(e.loaded); } };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
        if (xhr.status >= 200 && xhr.status < 300) { resolve(body); }
        else { resolve({ failed: body.error || ("the server answered " + xhr.status) }); }
      };
      xhr.onerror = function () { resolve({ failed: "the connection failed" }); };
      xhr.send(data);
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!chosen.length) { selection.textContent = "Choose files, a folder or a zip first."; return; }
    var tooBig = chosen.filter(function (c) { return c.file.size > maxRequest; });
    button.disabled = true;
    progressWrap.hidden = false;
    fileList.innerHTML = "";
    var items = chosen.filter(function (c) { return c.file.size <= maxRequest; });
    var rows = {};
    items.forEach(function (it, i) { rows[i] = row(it.name); it.index = i; });
    var notSent = [];
    tooBig.forEach(function (c) {
      setStatus(row(c.name), "rejected", c.name + " — rejected: larger than the " + mb(maxRequest) + " limit per upload request");
      notSent.push({ file: c.name, reason: "too_large" });
    });
    var total = items.reduce(function (s, c) { return s + c.file.size; }, 0) || 1;
    var done = 0, counts = { stored: 0, duplicate: 0, rejected: tooBig.length, conflict: 0 };
    var inFlight = {};  // part number -> bytes sent so far
    function show() {
      var extra = Object.keys(inFlight).reduce(function (s, k) { return s + inFlight[k]; }, 0);
      var pct = Math.min(100, Math.round(100 * (done + extra) / total));
      bar.style.width = pct + "%";
      progressBox.setAttribute("aria-valuenow", String(pct));
      progressText.textContent = pct + "% — " + counts.stored + " stored, " + counts.duplicate +
        " duplicate, " + counts.conflict + " conflict, " + counts.rejected + " rejected";
    }
    show();
    postJSON(form.dataset.batchesUrl, new FormData()).then(function (batch) {
      var parts = chunks(items);
      var next = 0;
      function sendNext() {
        if (next >= parts.length) { return Promise.resolve(); }
        var n = next++;
        var chunk = parts[n];
        chunk.forEach(function (it) { setStatus(rows[it.index], "uploading", it.name + " — uploading"); });
        inFlight[n] = 0;
        return sendChunk(batch.files_url, chunk, function (loaded) {
          inFlight[n] = loaded; fileProgress(chunk, rows, loaded); show();
        })
          .then(function (res) {
            var size = chunk.reduce(function (s, c) { return s + c.file.size; }, 0);
            delete inFlight[n];
            done += size;
            if (res.failed) {
              chunk.forEach(function (it) {
                counts.rejected++;
                setStatus(rows[it.index], "rejected", it.name + " — not stored: " + res.failed);
                notSent.push({ file: it.name, reason: "failed", detail: res.failed });
              });
            } else {
              var byName = {};
              (res.results || []).forEach(function (r) { (byName[r.file] = byName[r.file] || []).push(r); });
              chunk.forEach(function (it) {
                var list = byName[it.name] || [];
                var r = list.shift();
                if (!r) { counts.stored++; setStatus(rows[it.index], "stored", it.name + " — stored"); return; }
                counts[r.status] = (counts[r.status] || 0) + 1;
                setStatus(rows[it.index], r.status, it.name + " — " + r.status + (r.error ? ": " + r.error : ""));
                // A zip yields several results under entry names: count them too.
                list.forEach(function (extra) { counts[extra.status] = (counts[extra.status] || 0) + 1; });
              });
              Object.keys(byName).forEach(function (k) {
                if (!chunk.some(function (it) { return it.name === k; })) {
                  byName[k].forEach(function (r) { counts[r.status] = (counts[r.status] || 0) + 1; });
                }
              });
            }
            show();
          }).then(sendNext);
      }
      var lanes = [];
      for (var i = 0; i < PARALLEL_PARTS; i++) { lanes.push(sendNext()); }
      return Promise.all(lanes).then(function () {
        var data = new FormData(form);
        data.delete("files");
        var reported = notSent.slice(0, MAX_REPORTED).map(function (r) {
          return { file: r.file.slice(-300), reason: r.reason, detail: (r.detail || "").slice(0, 200) };
        });
        if (notSent.length > MAX_REPORTED) { reported.push({ more: notSent.length - MAX_REPORTED }); }
        data.append("client_rejections", JSON.stringify(reported));
        return postJSON(batch.finish_url, data);
      }).then(function (res) { window.location.assign(res.redirect); });
    }).catch(function (err) {
      progressText.textContent = "Upload stopped: " + err.message + ". Files already stored are kept; upload again to continue.";
      button.disabled = false;
    });
  });
})();

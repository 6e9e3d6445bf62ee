// Study viewer: series list, slice scrolling, window/level, zoom/pan, playback, prefetch.
// Frames are rendered by the server; this script only chooses which URL to show.
(function () {
  "use strict";
  var root = document.getElementById("viewer");
  if (!root) { return; }
  var $ = function (id) { return document.getElementById(id); };
  var img = $("viewer-image"), stage = $("stage"), transform = $("transform");
  var slider = $("slice-slider"), counter = $("slice-counter"), presetSel = $("wl-preset");
  var errorBox = $("frame-error"), statusBox = $("viewer-status");
  var playBtn = $("play"), fpsInput = $("fps");
  var PREFETCH = 5;

  var state = {
    data: null, index: 0, window: null, preset: "Default", zoom: 1, panX: 0, panY: 0,
    mode: "window", timer: null, seq: 0, objectUrl: null, shownUrl: null, prefetched: {}
  };

  // Same rounding as the server (frames.round_window) so repeated windows hit the caches.
  function roundWindow(c, w) {
    var step = Math.min(1, Math.pow(10, Math.floor(Math.log10(Math.max(w, 1e-6))) - 2));
    var digits = Math.max(0, -Math.floor(Math.log10(step)));
    var r = function (v) { return Number((Math.round(v / step) * step).toFixed(digits)); };
    return [r(c), Math.max(r(w), step)];
  }

  function frameUrl(i) {
    var f = state.data.frames[i];
    if (!state.window || state.data.colour) { return f.url; }
    return f.url + "?wc=" + encodeURIComponent(state.window[0]) + "&ww=" + encodeURIComponent(state.window[1]);
  }

  function effectiveWindow(i) {
    if (state.window) { return state.window; }
    var f = state.data.frames[i];
    return (f && f.window) || state.data.auto_window || null;
  }

  function fmt(v) { return v === null || v === undefined ? "—" : String(Math.round(v * 10) / 10); }

  function updateOverlay() {
    var d = state.data, f = d.frames[state.index], n = d.frames.length;
    var ov = d.overlay;
    $("overlay-tl").textContent = [ov.patient, ov.patient_id && ov.patient_id !== ov.patient ? ov.patient_id : "", ov.study_date || ""]
      .filter(Boolean).join("\n");
    $("overlay-tr").textContent = [d.series.modality, d.series.description].filter(Boolean).join("\n");
    var lines = ["Slice " + (state.index + 1) + "/" + n];
    if (f.frame > 0 || (n > 1 && d.frames.some(function (x) { return x.frame > 0; }))) { lines.push("Frame " + (f.frame + 1)); }
    if (f.instance_number !== null) { lines.push("Image #" + f.instance_number); }
    if (f.position !== null) { lines.push("Pos " + fmt(f.position) + " mm"); }
    if (f.columns && f.rows) { lines.push(f.columns + "×" + f.rows); }
    $("overlay-bl").textContent = lines.join("\n");
    var w = effectiveWindow(state.index);
    $("overlay-br").textContent = (d.colour ? "colour" : "W " + (w ? fmt(w[1]) : "auto") + " / L " + (w ? fmt(w[0]) : "auto")) +
      "\nZoom " + Math.round(state.zoom * 100) + "%";
    counter.textContent = (state.index + 1) + " / " + n;
    counter.dataset.index = String(state.index + 1);
  }

  function show(i) {
    var d = state.data;
    if (!d || !d.frames.length) { return; }
    state.index = Math.max(0, Math.min(d.frames.length - 1, i));
    slider.value = String(state.index + 1);
    updateOverlay();
    var url = frameUrl(state.index);
    if (url === state.shownUrl) { return; }
    state.shownUrl = url;
    img.dataset.src = url;
    var seq = ++state.seq;
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("the server answered " + r.status); }
      var err = r.headers.get("X-Frame-Error");
      return r.blob().then(function (b) { return { blob: b, err: err }; });
    }).then(function (res) {
      if (seq !== state.seq) { return; }  // a newer frame was asked for meanwhile
      var objectUrl = URL.createObjectURL(res.blob);
      img.onload = function () {
        if (state.objectUrl && state.objectUrl !== objectUrl) { URL.revokeObjectURL(state.objectUrl); }
        state.objectUrl = objectUrl;
        img.dataset.loaded = url;
      };
      img.src = objectUrl;
      if (res.err) {
        errorBox.textContent = "Slice " + (state.index + 1) + " cannot be displayed: " + res.err;
        errorBox.hidden = false;
      } else { errorBox.hidden = true; }
    }).catch(function (e) {
      if (seq !== state.seq) { return; }
      errorBox.textContent = "Slice " + (state.index + 1) + " could not be loaded: " + e.message;
      errorBox.hidden = false;
    });
    prefetch();
  }

  // Warm the browser cache with neighbouring slices so scrolling stays smooth.
  function prefetch() {
    var d = state.data;
    for (var k = 1; k <= PREFETCH; k++) {
      [state.index + k, state.index - k].forEach(function (j) {
        if (j < 0 || j >= d.frames.length) { return; }
        var u = frameUrl(j);
        if (state.prefetched[u]) { return; }
        state.prefetched[u] = true;
        var im = new Image();
        im.src = u;
      });
    }
  }

  function step(delta) { if (state.data) { show(state.index + delta); } }

  function applyTransform() {
    transform.style.transform = "translate(" + state.panX + "px," + state.panY + "px) scale(" + state.zoom + ")";
    if (state.data) { updateOverlay(); }
  }

  function zoomBy(factor) {
    state.zoom = Math.max(0.25, Math.min(16, state.zoom * factor));
    applyTransform();
  }

  function setPresets() {
    presetSel.innerHTML = "";
    var presets = state.data.presets || [];
    presets.forEach(function (p) {
      var o = document.createElement("option");
      o.value = p.name;
      o.textContent = p.window ? p.name + " (" + p.window[0] + "/" + p.window[1] + ")" : p.name;
      presetSel.appendChild(o);
    });
    var custom = document.createElement("option");
    custom.value = "Custom";
    custom.textContent = "Custom";
    custom.hidden = true;
    presetSel.appendChild(custom);
    presetSel.disabled = !presets.length;
    presetSel.value = "Default";
  }

  function choosePreset(name) {
    var p = (state.data.presets || []).filter(function (x) { return x.name === name; })[0];
    if (!p) { return; }
    state.preset = name;
    state.window = p.window ? roundWindow(p.window[0], p.window[1]) : null;
    presetSel.value = name;
    state.prefetched = {};
    show(state.index);
  }

  function resetView() {
    state.zoom = 1; state.panX = 0; state.panY = 0;
    applyTransform();
    if (state.data && state.data.presets && state.data.presets.length) { choosePreset("Default"); }
  }

  function stopPlay() {
    if (state.timer) { clearInterval(state.timer); state.timer = null; }
    playBtn.textContent = "Play";
    playBtn.setAttribute("aria-pressed", "false");
  }

  function startPlay() {
    stopPlay();
    var fps = Math.max(1, Math.min(60, parseInt(fpsInput.value, 10) || 10));
    state.timer = setInterval(function () {
      var n = state.data.frames.length;
      show((state.index + 1) % n);
    }, 1000 / fps);
    playBtn.textContent = "Pause";
    playBtn.setAttribute("aria-pressed", "true");
  }

  function openSeries(button) {
    stopPlay();
    document.querySelectorAll(".series-item").forEach(function (b) { b.classList.toggle("active", b === button); });
    statusBox.textContent = "Loading series…";
    statusBox.hidden = false;
    fetch(button.dataset.framesUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (data) {
        state.data = data;
        state.window = null; state.preset = "Default"; state.shownUrl = null; state.prefetched = {};
        statusBox.hidden = true;
        slider.max = String(Math.max(1, data.frames.length));
        slider.disabled = data.frames.length < 2;
        $("playback").hidden = data.frames.length < 2;
        setPresets();
        var url = new URL(window.location.href);
        url.searchParams.set("series", button.dataset.seriesId);
        window.history.replaceState(null, "", url.toString());
        show(0);
      })
      .catch(function (e) { statusBox.textContent = "The series could not be opened: " + e.message; });
  }

  // Series list.
  document.querySelectorAll(".series-item").forEach(function (b) {
    b.addEventListener("click", function () { openSeries(b); });
  });

  // Slice navigation: wheel, keys, slider.
  stage.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.ctrlKey) { zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1); return; }
    step(e.deltaY > 0 ? 1 : e.deltaY < 0 ? -1 : 0);
  }, { passive: false });
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) { return; }
    var moves = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 };
    if (e.key in moves) { e.preventDefault(); step(moves[e.key]); }
    else if (e.key === "Home") { e.preventDefault(); show(0); }
    else if (e.key === "End" && state.data) { e.preventDefault(); show(state.data.frames.length - 1); }
  });
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10) - 1); });

  // Window/level and pan by dragging.
  var drag = null, wlTimer = null;
  function setMode(mode) {
    state.mode = mode;
    $("mode-window").classList.toggle("active", mode === "window");
    $("mode-pan").classList.toggle("active", mode === "pan");
    $("mode-window").setAttribute("aria-pressed", String(mode === "window"));
    $("mode-pan").setAttribute("aria-pressed", String(mode === "pan"));
    stage.classList.toggle("panning", mode === "pan");
  }
  $("mode-window").addEventListener("click", function () { setMode("window"); });
  $("mode-pan").addEventListener("click", function () { setMode("pan"); });
  stage.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  stage.addEventListener("mousedown", function (e) {
    if (!state.data) { return; }
    var kind = e.button === 2 || (e.button === 0 && state.mode === "window") ? "window" : (e.button === 0 ? "pan" : null);
    if (kind === "window" && state.data.colour) { kind = state.mode === "pan" ? "pan" : null; }
    if (!kind) { return; }
    e.preventDefault();
    stage.focus();
    var w = effectiveWindow(state.index) || [127.5, 255];
    drag = { kind: kind, x: e.clientX, y: e.clientY, panX: state.panX, panY: state.panY, c: w[0], w: w[1] };
  });
  window.addEventListener("mousemove", function (e) {
    if (!drag) { return; }
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.kind === "pan") {
      state.panX = drag.panX + dx; state.panY = drag.panY + dy;
      applyTransform();
      return;
    }
    var sens = Math.max(drag.w, 2) / 256;  // a 256-pixel drag doubles or removes the width
    state.window = roundWindow(drag.c + dy * sens, Math.max(1e-3, drag.w + dx * sens));
    state.preset = "Custom";
    presetSel.value = "Custom";
    updateOverlay();
    clearTimeout(wlTimer);
    wlTimer = setTimeout(function () { state.prefetched = {}; show(state.index); }, 120);
  });
  window.addEventListener("mouseup", function () { drag = null; });

  presetSel.addEventListener("change", function () { choosePreset(presetSel.value); });
  $("zoom-in").addEventListener("click", function () { zoomBy(1.25); });
  $("zoom-out").addEventListener("click", function () { zoomBy(0.8); });
  $("reset").addEventListener("click", resetView);
  playBtn.addEventListener("click", function () { if (state.timer) { stopPlay(); } else { startPlay(); } });
  fpsInput.addEventListener("change", function () { if (state.timer) { startPlay(); } });

  var first = document.querySelector('.series-item[data-series-id="' + root.dataset.initialSeries + '"]') ||
    document.querySelector(".series-item");
  if (first) { openSeries(first); }
})();

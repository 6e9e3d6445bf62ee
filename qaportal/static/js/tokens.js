// The new API token's copy button (shown only where the clipboard can be written).
(function () {
  "use strict";
  var btn = document.getElementById("copy-token");
  if (!btn || !navigator.clipboard) { return; }
  var done = document.getElementById("copy-done");
  btn.hidden = false;
  btn.addEventListener("click", function () {
    var source = document.querySelector(btn.getAttribute("data-copy"));
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      done.textContent = "Copied.";
    }, function () {
      done.textContent = "Copy failed: select the token and copy it by hand.";
    });
  });
})();

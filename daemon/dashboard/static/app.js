// acquit dashboard: the little JavaScript it has. Every page works without
// it; it only (1) submits filter forms when a select changes and (2)
// refreshes pages marked data-refresh (the overview) in place.
"use strict";
(function () {
  function wireFilters(root) {
    root.querySelectorAll("form.filters select").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
  }
  wireFilters(document);

  var main = document.querySelector("main[data-refresh]");
  if (!main) { return; }
  var every = Math.max(2, parseInt(main.getAttribute("data-refresh"), 10) || 10) * 1000;
  var busy = false;
  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (!r.ok || r.redirected) { throw new Error("refresh: HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var next = doc.querySelector("main[data-refresh]");
        var foot = doc.querySelector("footer");
        if (next) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(next.childNodes));
          wireFilters(main);
        }
        if (foot) { document.querySelector("footer").textContent = foot.textContent; }
        document.documentElement.removeAttribute("data-stale");
      })
      .catch(function () { document.documentElement.setAttribute("data-stale", "1"); })
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, every);
})();

// flashmart storefront: keeps the payment countdown of a pending order up to date.
// Progressive enhancement only: every page works without this script.
"use strict";
(function () {
  var timers = document.querySelectorAll("[data-remaining-ms]");
  if (!timers.length) return;
  var started = Date.now();
  function text(ms) {
    var secs = Math.ceil(Math.max(0, ms) / 1000);
    var s = secs % 60;
    return Math.floor(secs / 60) + ":" + (s < 10 ? "0" : "") + s;
  }
  function tick() {
    var elapsed = Date.now() - started;
    var running = false;
    timers.forEach(function (el) {
      var left = Number(el.getAttribute("data-remaining-ms")) - elapsed;
      el.textContent = text(left);
      if (left > 0) running = true;
      else el.classList.add("over");
    });
    if (running) setTimeout(tick, 1000 - (elapsed % 1000));
  }
  tick();
})();

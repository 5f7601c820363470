// atif serve: live updates and the review queue's keyboard. Loaded from /static (the CSP allows
// no inline script); renders nothing from data itself: pages come from the server, escaped.
(function () {
  "use strict";
  var body = document.body;
  var live = body.getAttribute("data-live");

  // ---- live updates: poll the data version; refresh list pages in place, else offer a reload ----
  var version = body.getAttribute("data-version");
  var POLL_MS = Number(body.getAttribute("data-poll-ms")) || 4000;
  function typing() {
    var a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT");
  }
  function refreshInPlace() {
    return fetch(location.href, { credentials: "same-origin", headers: { "accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("live");
        var main = document.getElementById("live");
        if (!fresh || !main) return;
        main.replaceChildren.apply(main, Array.prototype.map.call(fresh.childNodes, function (n) {
          return document.importNode(n, true);
        }));
        version = doc.body.getAttribute("data-version");
        body.setAttribute("data-version", version);
      });
  }
  function poll() {
    fetch("/api/version", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.version || data.version === version) return;
        if (live === "reload" && !typing()) return refreshInPlace();
        var banner = document.getElementById("live-banner");
        if (banner) banner.hidden = false;
      })
      .catch(function () { /* the server restarts or the store is busy: try again next time */ })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  if (live === "reload" || live === "banner") setTimeout(poll, POLL_MS);

  // ---- sections the server computes on demand (an experiment's summary): fetched and swapped in ----
  function nodesOf(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    return Array.prototype.map.call(doc.body.childNodes, function (n) { return document.importNode(n, true); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-fragment]"), function (slot) {
    fetch(slot.getAttribute("data-fragment"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(new Error(r.status + " " + r.statusText)); })
      .then(function (html) { slot.replaceWith.apply(slot, nodesOf(html)); })
      .catch(function (err) { slot.textContent = "The summary could not be computed: " + err.message; });
  });

  // ---- review keyboard: y / n answer, s skips, j / k move through the queue ----
  var form = document.getElementById("review-form");
  if (form) {
    var sent = false;
    form.addEventListener("submit", function (e) { if (sent) e.preventDefault(); sent = true; });
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      var t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
        if (e.key === "Escape") t.blur();
        return;
      }
      var go = function (id) { var a = document.getElementById(id); if (a) { e.preventDefault(); location.href = a.href; } };
      if (e.key === "y" || e.key === "n") {
        e.preventDefault();
        if (sent) return;
        var button = document.getElementById(e.key === "y" ? "yes" : "no");
        if (form.requestSubmit) form.requestSubmit(button); else button.click();
      } else if (e.key === "s") go("skip");
      else if (e.key === "j") go("next");
      else if (e.key === "k") go("prev");
    });
  }

  // ---- cited steps: open the collapsed blocks around a step before jumping to it ----
  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    for (var p = target && target.parentElement; p; p = p.parentElement) if (p.tagName === "DETAILS") p.open = true;
    if (target) target.scrollIntoView({ block: "start" });
  }
  window.addEventListener("hashchange", reveal);
  if (location.hash) reveal();
})();

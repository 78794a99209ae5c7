// The agent screen's live banners: each contact with a restriction routed to this agent or their
// queue arrives over server-sent events and is shown at the top of the list, in the same words and
// colours as the page itself. Without JavaScript the page refreshes itself instead.
"use strict";
(function () {
  var list = document.getElementById("live-list");
  if (!list || !window.EventSource) { return; }
  document.documentElement.classList.add("js");
  var words = { danger: "Danger", warning: "Take care", info: "Information" };

  function para(cls, text) {
    var p = document.createElement("p");
    p.className = cls;
    p.textContent = text;
    return p;
  }

  function show(event) {
    var data = JSON.parse(event.data);
    var banner = data.banner || {};
    var item = document.createElement("li");
    item.className = "live__item live__item--new";
    var link = document.createElement("a");
    link.href = "/agent?contact_id=" + encodeURIComponent(data.contact_id);
    link.textContent = "Contact by " + String(data.channel || "").replace("_", " ") + " at " +
      new Date().toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
    var meta = para("banner__meta", "");
    meta.appendChild(link);
    item.appendChild(meta);
    var box = document.createElement("div");
    var severity = words[banner.severity] ? banner.severity : "info";
    box.className = "banner banner--" + severity;
    box.appendChild(para("banner__severity", words[severity]));
    String(banner.text || "").split(" | ").forEach(function (line) {
      if (line.trim()) { box.appendChild(para("banner__text", line.trim())); }
    });
    if (banner.review_due) {
      var due = new Date(banner.review_due + "T12:00:00");
      box.appendChild(para("banner__meta", "Restriction review date: " +
        due.toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric" })));
    }
    item.appendChild(box);
    var empty = list.querySelector(".live__empty");
    if (empty) { empty.remove(); }
    list.insertBefore(item, list.firstChild);
  }

  var source = new EventSource(list.getAttribute("data-stream"));
  source.addEventListener("open", function () { list.setAttribute("data-live", "connected"); });
  source.addEventListener("error", function () { list.setAttribute("data-live", "reconnecting"); });
  source.addEventListener("banner", show);
  // The session ended (signed out elsewhere, a new password, an account closed): stop, and let the
  // page take the agent to sign in again.
  source.addEventListener("signed-out", function () { source.close(); window.location.reload(); });
})();

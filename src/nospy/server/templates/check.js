// Live progress of a check: poll its JSON until it is done or failed, then reload to show the verdicts.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || live.dataset.finished === "yes") return;
  var id = live.dataset.check;
  var state = document.getElementById("state");
  var events = document.getElementById("events");
  function show(check) {
    state.textContent = check.state;
    state.className = "badge " + check.state;
    events.textContent = "";
    check.events.forEach(function (e) {
      var li = document.createElement("li");
      li.textContent = e.text;  // text, never HTML: progress lines name files from uploads
      events.appendChild(li);
    });
  }
  function poll() {
    fetch("/api/checks/" + id, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (check) {
        show(check);
        if (check.state === "done" || check.state === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 500);
        }
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 300);
})();

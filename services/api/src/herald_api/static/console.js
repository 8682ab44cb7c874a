// Herald's console: asks before an action that changes something, and keeps the overview
// fresh. No library; loaded from Herald itself (the pages allow no other script).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var live = document.querySelector("[data-refresh]");
  if (!live) {
    return;
  }
  var every = Number(live.getAttribute("data-every") || "3") * 1000;
  function refresh() {
    fetch(live.getAttribute("data-refresh"), {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/admin/sign-in");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          live.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () {
        // The next round tries again: a restart of the API should not need a reload.
      })
      .finally(function () {
        window.setTimeout(refresh, every);
      });
  }
  window.setTimeout(refresh, every);
})();

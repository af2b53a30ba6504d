// dualkey console: keeps a release page's status current without a reload. Served as a file
// (the Content-Security-Policy allows no inline script); pages work without it.
"use strict";

(function () {
  const FINAL = ["succeeded", "failed", "rejected", "cancelled", "expired", "reisolated"];
  const EVERY_MS = 2000;

  function start() {
    const facts = document.querySelector("section.facts[data-release-id]");
    const status = document.getElementById("status");
    if (!facts || !status) {
      return;
    }
    const url = "/ui/releases/" + encodeURIComponent(facts.dataset.releaseId) + "/status";
    const actionStatus = document.getElementById("mde-action-status");
    const actionId = document.getElementById("mde-action-id");
    let shown = status.dataset.status;

    async function poll() {
      let body;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) {
          return; // Signed out or gone: the next full load says why.
        }
        body = await response.json();
      } catch (e) {
        return; // The daemon is restarting; try again next round.
      } finally {
        if (!body || FINAL.indexOf(body.status) < 0 || body.mde_action_status === "Pending" || body.mde_action_status === "InProgress") {
          window.setTimeout(poll, EVERY_MS);
        }
      }
      if (body.status !== shown) {
        shown = body.status;
        status.textContent = body.status;
        status.dataset.status = body.status;
        // Decisions offered for the old status may no longer apply.
        if (body.status !== "pending") {
          document.querySelectorAll("form.decision").forEach(function (f) { f.hidden = true; });
        }
      }
      if (actionStatus && body.mde_action_status) {
        actionStatus.textContent = body.mde_action_status;
      }
      if (actionId && body.mde_action_id) {
        actionId.textContent = body.mde_action_id;
      }
    }
    window.setTimeout(poll, EVERY_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

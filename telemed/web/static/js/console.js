// The triage queue: refreshed from the event stream, alerts acknowledged or resolved in place.
(function () {
  "use strict";
  const { t, api, problemText, say } = window.Telemed;
  const queue = document.getElementById("queue");
  const live = document.getElementById("live");
  let pending = null;

  function refresh() {
    // Several events in a burst (a flood of readings) make one refresh.
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      document.body.dispatchEvent(new CustomEvent("queue-changed"));
    }, 150);
  }

  function listen() {
    const stream = new EventSource("/api/v1/events");
    const onEvent = (event) => {
      live.classList.remove("offline");
      live.textContent = t("app.live");
      let data = null;
      try { data = JSON.parse(event.data); } catch (e) { data = null; }
      const name = (data && data.event) || event.type || "";
      if (/^(alert|wound|instruction)/.test(name) || event.type === "message") {
        refresh();
      }
    };
    stream.onmessage = onEvent;
    for (const name of [
      "alert.raised", "alert.updated", "alert.escalated", "alert.acknowledged", "alert.resolved",
      "wound_case.submitted", "wound_case.answered", "wound_case.read", "wound_case.escalated",
      "wound_case.created", "wound_case.updated", "instruction.created", "instruction.read",
    ]) {
      stream.addEventListener(name, onEvent);
    }
    stream.onopen = () => {
      live.classList.remove("offline");
      live.textContent = t("app.live");
    };
    stream.onerror = () => {
      // EventSource reconnects by itself and resumes from the last event id.
      live.classList.add("offline");
      live.textContent = t("app.offline");
    };
  }

  queue.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.alert-action");
    if (!form) return;
    event.preventDefault();
    const action = (event.submitter && event.submitter.value) || "resolve";
    const note = form.elements.note.value.trim();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("POST", "/api/v1/alerts/" + form.dataset.alert + "/" + action, note ? { note } : {});
      say(t("alert.done"), "ok");
      refresh();
    } catch (error) {
      say(t("app.error", { detail: problemText(error) }), "error");
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  listen();
})();

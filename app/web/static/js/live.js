// Live pages: the event stream (server-sent events, sent with the session cookie) says that
// something changed; every element with data-live="<url>" then fetches its fragment again.
(function () {
  "use strict";
  const T = window.Telemed;
  const indicator = document.getElementById("live");
  // Event names as the outbox writes them; anything else still refreshes (onmessage).
  const EVENTS = [
    "alert.raised", "alert.upgraded", "alert.repeated", "alert.escalated",
    "alert.acknowledged", "alert.resolved", "alert.updated",
    "wound_case.submitted", "wound_case.answered", "wound_case.question",
    "wound_case.replied", "wound_case.read", "wound_case.escalated",
    "alert.instruction", "alert.instruction_confirmed",
  ];
  let timer = null;
  let opened = 0;
  const listeners = [];

  function busyTyping(box) {
    const active = document.activeElement;
    return box.contains(active) && active.matches("input, textarea, select");
  }

  async function refreshOne(box) {
    if (busyTyping(box)) {
      // Never replace a form under the user's fingers; catch up when she leaves it.
      box.dataset.stale = "true";
      return;
    }
    const response = await fetch(box.dataset.live, {
      credentials: "same-origin", headers: { accept: "text/html" },
    });
    if (response.status === 401) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname));
      return;
    }
    if (!response.ok) return;
    box.innerHTML = await response.text();
    delete box.dataset.stale;
    box.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
  }

  function refresh() {
    // A burst of events (a flood of readings) makes one refresh.
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      for (const box of document.querySelectorAll("[data-live]")) {
        refreshOne(box).catch(() => { box.dataset.stale = "true"; });
      }
      for (const listener of listeners) listener();
    }, 150);
  }

  document.addEventListener("focusout", (event) => {
    const box = event.target.closest && event.target.closest("[data-live][data-stale]");
    if (box) setTimeout(() => { if (!busyTyping(box)) refresh(); }, 0);
  });

  function show(online) {
    if (!indicator) return;
    indicator.classList.toggle("offline", !online);
    indicator.textContent = T.t(online ? "app.live" : "app.offline");
  }

  let stream = null;
  let backoff = 2000;

  function connect() {
    stream = new EventSource("/api/v1/events");
    stream.onmessage = refresh;
    for (const name of EVENTS) stream.addEventListener(name, refresh);
    stream.onopen = () => {
      show(true);
      backoff = 2000;
      // After a reconnect the stream replays from Last-Event-ID; a fresh look costs little.
      if (opened++ > 0) refresh();
    };
    stream.onerror = () => {
      show(false);
      // The browser retries by itself unless the server refused the stream (a 4xx/5xx answer
      // closes it for good); then try again later, slower each time.
      if (stream.readyState === EventSource.CLOSED) {
        setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 60000);
      }
    };
    T.live.stream = stream;
  }

  T.live = { refresh: refresh, stream: null, on: (listener) => listeners.push(listener) };
  connect();
  window.addEventListener("pagehide", () => stream && stream.close());
})();

// The triage queue: open alerts and wound cases of the specialist's organisation, red first,
// redrawn whenever the event stream says something changed; alerts acknowledged or resolved
// in place with a note.
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, api, el, num, when, problemText, say } = T;
  const box = document.getElementById("queue");
  const RANK = { red: 0, yellow: 1, blue: 2 };
  // Wound cases in these states wait for the specialist team; the others for the nurse.
  const FOR_SPECIALIST = ["submitted", "awaiting_specialist"];

  function fromAlert(a) {
    const kind = a.rule_key.split(":")[0];
    const value = a.last_value === null ? "" : " " + num(a.last_value);
    return {
      kind: "alert", id: String(a.id), severity: a.severity, state: t("state." + a.state),
      open: a.state === "open", since: a.first_measured_at, latest: a.last_measured_at,
      title: a.patient_name + ": " + t("metric." + a.metric) + value,
      detail: t("rule." + kind) + (a.count > 1 ? " · " + t("alert.count") + " " + a.count : "")
        + (a.escalated_at ? " · " + t("alert.escalated") : ""),
      url: "/console/patients/" + a.patient_id,
    };
  }

  function fromCase(c) {
    const late = c.overdue || c.escalated_at;
    return {
      kind: "wound", id: c.id, severity: c.urgent || late ? "red" : "yellow",
      state: t("enum.case_state." + c.state), since: c.submitted_at, latest: c.submitted_at,
      title: c.patient_name + ": " + t("enum.wound_type." + c.wound_type) + ", "
        + t("enum.body_location." + c.body_location),
      detail: t("wound.from", { org: c.submitted_by_org_name }) + " · "
        + t("wound.photo_count", { n: c.photo_count })
        + (c.due_at ? " · " + t("wound.due") + " " + when(c.due_at) : "")
        + (late ? " · " + t("wound.overdue") : ""),
      thumb: c.thumb_url, url: "/console/wounds/" + c.id,
    };
  }

  // Red first; within a colour the newest first (as the alert API orders them).
  function ordered(items) {
    return items.sort((a, b) => (RANK[a.severity] ?? 9) - (RANK[b.severity] ?? 9)
      || Date.parse(b.latest) - Date.parse(a.latest));
  }

  function actions(item) {
    const noteId = "note-" + item.id;
    const form = el("form", { class: "alert-action inline", "data-alert": item.id },
      el("label", { for: noteId }, t("alert.note")),
      el("input", { id: noteId, name: "note", maxlength: "2000" }));
    if (item.open) {
      form.append(el("button", { type: "submit", name: "action", value: "acknowledge", class: "button secondary" }, t("alert.ack")));
    }
    form.append(el("button", { type: "submit", name: "action", value: "resolve", class: "button primary" }, t("alert.resolve")));
    return form;
  }

  function card(item) {
    const li = el("li", { class: "card sev-" + item.severity, "data-kind": item.kind, "data-id": item.id },
      el("div", { class: "card-head" },
        el("span", { class: "badge sev-" + item.severity }, t("severity." + item.severity)),
        el("span", { class: "kind" }, item.kind === "alert" ? t("queue.alerts") : t("wound.case")),
        el("span", { class: "state" }, item.state)),
      el("p", { class: "card-title" }, el("a", { href: item.url }, item.title)),
      el("p", { class: "muted" }, item.detail),
      el("p", { class: "muted" }, t("alert.since") + " " + when(item.since)));
    if (item.thumb) {
      li.insertBefore(el("img", { src: item.thumb, alt: "", class: "thumb", width: "80", height: "80" }), li.children[1]);
    }
    if (item.kind === "alert") li.append(actions(item));
    return li;
  }

  async function fetchOr(url, fallback) {
    try {
      return await api("GET", url);
    } catch (error) {
      if (error.status === 404) return fallback; // that part of the service is not installed
      throw error;
    }
  }

  async function load() {
    if (box.contains(document.activeElement) && document.activeElement.matches("input")) {
      box.dataset.stale = "true"; // never redraw under the user's fingers
      return;
    }
    try {
      const [alerts, cases] = await Promise.all([
        fetchOr("/api/v1/alerts?state=unresolved", []),
        fetchOr("/api/v1/wound-cases?state=open", []),
      ]);
      const items = ordered(alerts.map(fromAlert).concat(
        cases.filter((c) => FOR_SPECIALIST.includes(c.state)).map(fromCase)));
      box.replaceChildren(items.length
        ? el("ol", { class: "plain queue", "aria-label": t("queue.title") }, ...items.map(card))
        : el("p", { class: "empty" }, t("queue.empty")));
      delete box.dataset.stale;
      box.removeAttribute("aria-busy");
    } catch (error) {
      say(t("app.error", { detail: problemText(error) }), "error");
    }
  }

  box.addEventListener("focusout", () => {
    if (box.dataset.stale) setTimeout(() => { if (!box.contains(document.activeElement)) load(); }, 0);
  });

  box.addEventListener("submit", async (event) => {
    const form = event.target.closest("form.alert-action");
    if (!form) return;
    event.preventDefault();
    const action = (event.submitter && event.submitter.value) || "resolve";
    const note = form.elements.note.value.trim();
    if (action === "resolve" && !note) {
      say(t("alert.note_required"), "error");
      form.elements.note.focus();
      return;
    }
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("POST", "/api/v1/alerts/" + form.dataset.alert + "/" + action, note ? { note } : {});
      say(t("alert.done"), "ok");
      document.activeElement.blur();
      load();
    } catch (error) {
      say(t("app.error", { detail: problemText(error) }), "error");
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  T.live.on(load);
  load();
})();

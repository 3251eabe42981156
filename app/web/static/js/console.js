// The triage queue: open alerts and wound cases of the specialist's organisation, red first,
// redrawn whenever the event stream says something changed; alerts acknowledged or resolved
// in place with a note, and answered with an instruction for the carers (COPD: what to do now;
// AK: the new weekly dose and the next INR date).
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, api, el, num, when, problemText, say, send, fields } = T;
  const box = document.getElementById("queue");
  const RANK = { red: 0, yellow: 1, blue: 2 };
  // Wound cases in these states wait for the specialist team; the others for the nurse.
  const FOR_SPECIALIST = ["submitted", "awaiting_specialist"];
  // alerts.service.CopdAction
  const COPD_ACTIONS = ["start_rescue_pack", "call_patient", "visit_today", "change_oxygen", "other"];

  function fromAlert(a) {
    const kind = a.rule_key.split(":")[0];
    const value = a.last_value === null ? "" : " " + num(a.last_value);
    return {
      kind: "alert", id: String(a.id), program: a.program, severity: a.severity,
      state: t("state." + a.state),
      open: a.state === "open", since: a.first_measured_at, latest: a.last_measured_at,
      title: a.patient_name + ": " + t("metric." + a.metric) + value,
      detail: t("rule." + kind) + (a.count > 1 ? " · " + t("alert.count") + " " + a.count : "")
        + (a.escalated_at ? " · " + t("alert.escalated") : "") + T.alertNotes(a),
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

  function field(id, label, attrs) {
    return el("span", { class: "field" }, el("label", { for: id }, label), el("input", { id, ...attrs }));
  }

  function instructionForm(item) {
    const id = "instr-" + item.id;
    const form = el("form", { class: "alert-instruction", "data-alert": item.id, "data-program": item.program },
      el("label", { for: id + "-text" }, t("alert.instruction_text")),
      el("textarea", { id: id + "-text", name: "text", maxlength: "10000", rows: "3" }));
    if (item.program === "copd") {
      const set = el("fieldset", {}, el("legend", {}, t("alert.copd_actions")));
      for (const action of COPD_ACTIONS) {
        set.append(el("span", { class: "check" },
          el("input", { type: "checkbox", id: id + "-" + action, name: "actions", value: action }),
          el("label", { for: id + "-" + action }, t("alert.action." + action))));
      }
      set.append(
        field(id + "-oxygen", t("alert.oxygen_l_min"), { name: "oxygen_l_min", type: "text", inputmode: "decimal", autocomplete: "off", "data-number": "oxygen.l_min" }),
        field(id + "-other", t("alert.other"), { name: "other", maxlength: "500" }));
      form.append(set);
    } else if (item.program === "ak") {
      form.append(
        field(id + "-dose", t("dose.label"), { name: "weekly_dose_mg", type: "text", inputmode: "decimal", autocomplete: "off", "data-number": "dose.weekly_mg" }),
        field(id + "-date", t("alert.next_inr_date"), { name: "next_inr_date", type: "date" }),
        el("div", { class: "readback-slot" }));
    }
    form.append(el("button", { type: "submit", class: "button primary", "data-send": "" }, t("alert.send_instruction")));
    fields.watch(form, () => dropReadback(form));
    return el("details", { class: "instruction" }, el("summary", {}, t("alert.write_instruction")), form);
  }

  // A read-back belongs to the dose it was made for: any change to the dose takes it away.
  function dropReadback(form) {
    const slot = form.querySelector(".readback-slot");
    if (slot && slot.firstChild && form.elements.weekly_dose_mg
        && Number(slot.dataset.dose) !== fields.readNumber(form.elements.weekly_dose_mg).value) {
      slot.replaceChildren();
      delete slot.dataset.shown;
      form.querySelector("button[data-send]").hidden = false;
    }
  }

  // The request body of an instruction form, each number read by the forms' reader (the server
  // checks again); null when a field holds what the reader refused, said at the field.
  function instruction(form) {
    const body = { text: form.elements.text.value.trim() };
    const value = (name) => (form.elements[name] ? form.elements[name].value.trim() : "");
    const number = (name) => fields.readNumber(form.elements[name]);
    if (form.dataset.program === "copd") {
      const actions = [...form.querySelectorAll("input[name=actions]:checked")].map((c) => c.value);
      const oxygen = number("oxygen_l_min");
      if (actions.length) {
        body.fields = { program: "copd", actions };
        if (oxygen.ok && oxygen.value !== null) body.fields.oxygen_l_min = oxygen.value;
        if (value("other")) body.fields.other = value("other");
      }
    } else if (form.dataset.program === "ak") {
      const dose = number("weekly_dose_mg");
      if ((dose.ok && dose.value !== null) || value("next_inr_date")) {
        body.fields = { program: "ak" };
        if (dose.value !== null && dose.value !== undefined) body.fields.weekly_dose_mg = dose.value;
        if (value("next_inr_date")) body.fields.next_inr_date = value("next_inr_date");
      }
    }
    return form.querySelector("[aria-invalid=true]") ? null : body;
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
    if (item.kind === "alert") li.append(actions(item), instructionForm(item));
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

  // Never redraw under the user's fingers: while a field has focus or an instruction form is
  // open, note that the queue is stale and draw it when they are done.
  function inUse() {
    return Boolean(box.querySelector("details.instruction[open]")
      || (box.contains(document.activeElement) && document.activeElement.matches("input, textarea")));
  }

  async function load() {
    if (inUse()) {
      box.dataset.stale = "true";
      return;
    }
    try {
      const [alerts, cases] = await Promise.all([
        fetchOr("/api/v1/alerts?state=unresolved", []),
        fetchOr("/api/v1/wound-cases?state=open", []),
      ]);
      if (inUse()) { // the user began while the queue was being fetched
        box.dataset.stale = "true";
        return;
      }
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
  // An instruction form closed unsent: draw what came meanwhile.
  box.addEventListener("toggle", (event) => {
    if (!event.target.open && box.dataset.stale) load();
  }, true);

  box.addEventListener("submit", async (event) => {
    const written = event.target.closest("form.alert-instruction");
    if (written) {
      event.preventDefault();
      sendInstruction(written);
      return;
    }
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
    const url = "/api/v1/alerts/" + form.dataset.alert + "/" + action;
    if (await send([...form.querySelectorAll("button")], url, note ? { note } : {}, t("alert.done"))) {
      document.activeElement.blur();
      load();
    }
  });

  function fieldOf(form) {
    return (path) => {
      const name = path.replace(/^fields\./, "");
      if (name === "weekly_dose_mg" || name.startsWith("dose_confirmation")) return form.elements.weekly_dose_mg;
      return form.elements[name] && form.elements[name].nodeType ? form.elements[name] : null;
    };
  }

  async function sendInstruction(form) {
    fields.clearAll(form);
    const body = instruction(form);
    if (body === null) {
      fields.focusFirst(form);
      say(t("alert.instruction_fix"), "error");
      return;
    }
    if (!body.text) {
      fields.show(form.elements.text, "required");
      fields.focusFirst(form);
      say(t("alert.instruction_required"), "error");
      return;
    }
    const slot = form.querySelector(".readback-slot");
    if (slot && slot.dataset.shown) {
      const shown = JSON.parse(slot.dataset.shown);
      const box = form.elements.readback_confirmed;
      const note = slot.querySelector(".field-error");
      if (!box.checked) {
        note.hidden = false;
        box.setAttribute("aria-invalid", "true");
        box.setAttribute("aria-describedby", note.id);
        box.focus();
        return;
      }
      body.fields.dose_confirmation = {
        current_weekly_mg: shown.current_weekly_mg, new_weekly_mg: shown.new_weekly_mg,
        change_percent: shown.change_percent,
      };
    }
    const url = "/api/v1/alerts/" + form.dataset.alert + "/instructions";
    const buttons = [...form.querySelectorAll("button")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("POST", url, body);
    } catch (error) {
      buttons.forEach((b) => { b.disabled = false; });
      const problems = (error.body && error.body.problems) || [];
      const readback = problems.find((p) => p.code === "dose_confirmation_required"
        || p.code === "dose_confirmation_mismatch");
      if (readback && slot) {
        showReadback(form, slot, readback.params);
        return;
      }
      const rest = fields.fromApi(form, error, fieldOf(form));
      say(rest.length ? rest.join(" · ") : t("alert.instruction_fix"), "error");
      return;
    }
    say(t("alert.instruction_sent"), "ok");
    // Emptied and ready for the next one: the card may be opened again before the queue is
    // redrawn, and must neither resend this instruction nor stay disabled.
    form.reset();
    if (slot) { slot.replaceChildren(); delete slot.dataset.shown; }
    buttons.forEach((b) => { b.disabled = false; b.hidden = false; });
    form.closest("details").open = false;
    document.activeElement.blur();
    load();
  }

  // The server wants the dose read back: show it where the dose is, the send button waits.
  function showReadback(form, slot, dose) {
    slot.dataset.shown = JSON.stringify(dose);
    slot.dataset.dose = String(dose.new_weekly_mg);
    slot.replaceChildren(T.dose.readback(dose, "readback-" + form.dataset.alert));
    const send = form.querySelector("button[data-send]");
    if (send) send.hidden = true;
    slot.querySelector("h3").setAttribute("tabindex", "-1");
    slot.querySelector("h3").focus();
    say(t("dose.readback_title"), "info");
  }

  T.live.on(load);
  load();
})();

// The nurse's patient page: the hospital's instructions on the patient's alerts (what to do,
// a new dose, the next INR date), each confirmed as read or carried out. Drawn from the
// alerts API; the section stays hidden where alerts are not installed.
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, api, el, when, problemText, say, send } = T;
  const section = document.getElementById("alert-instructions");
  if (!section) return;
  const list = document.getElementById("orders-list");
  const base = "/api/v1/patients/" + section.dataset.patient;

  function details(fields) {
    const lines = [];
    if (fields.program === "copd") {
      for (const action of fields.actions || []) lines.push(t("alert.action." + action));
      if (fields.oxygen_l_min !== null && fields.oxygen_l_min !== undefined) {
        lines.push(t("alert.oxygen_l_min") + ": " + T.dose.exact(fields.oxygen_l_min));
      }
      if (fields.other) lines.push(t("alert.other") + ": " + fields.other);
    } else if (fields.program === "ak") {
      // The dose exactly as the specialist confirmed it, with its unit and in tablets.
      if (fields.weekly_dose_mg !== null && fields.weekly_dose_mg !== undefined) {
        lines.push(...T.dose.lines(fields));
      }
      if (fields.next_inr_date) lines.push(t("alert.next_inr_date") + ": " + fields.next_inr_date);
    }
    return lines.length ? el("ul", { class: "order-fields" }, ...lines.map((line) => el("li", {}, line))) : null;
  }

  function order(i, alerts) {
    const alert = alerts.get(i.alert_id);
    const late = alert ? T.alertNotes(alert).replace(/^ · /, "") : "";
    const done = i.confirmations.map((c) => el("li", { class: "muted" },
      t(c.kind === "read" ? "nurse.order_confirmed_read" : "nurse.order_confirmed_done",
        { name: c.user_name, at: when(c.at) })));
    return el("li", { class: "card", "data-instruction": i.id },
      el("p", { class: "muted" }, t("nurse.order_by", { name: i.author_name, org: i.author_organisation, at: when(i.created_at) })),
      late ? el("p", { class: "muted" }, late) : null,
      el("p", { class: "order-text" }, i.text),
      details(i.fields || {}),
      done.length ? el("ul", { class: "plain" }, ...done) : null,
      el("div", { class: "order-actions" },
        el("button", { type: "button", class: "button secondary", "data-kind": "read" }, t("nurse.order_read")),
        el("button", { type: "button", class: "button primary", "data-kind": "carried_out" }, t("nurse.order_done"))));
  }

  async function load() {
    let found;
    try {
      found = await api("GET", base + "/instructions?limit=50");
    } catch (error) {
      if (error.status === 404) return; // alerts are not part of this installation
      say(t("app.error", { detail: problemText(error) }), "error");
      return;
    }
    const orders = found.filter((i) => i.alert_id !== null);
    // The alerts the orders answer, to say when one was raised by a reading that came late.
    const alerts = new Map();
    if (orders.length) {
      try {
        for (const a of await api("GET", base + "/alerts?state=all&limit=200")) alerts.set(a.id, a);
      } catch (error) {
        say(t("app.error", { detail: problemText(error) }), "error");
      }
    }
    section.hidden = false;
    list.replaceChildren(orders.length
      ? el("ul", { class: "plain" }, ...orders.map((i) => order(i, alerts)))
      : el("p", { class: "empty" }, t("nurse.no_orders")));
  }

  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-kind]");
    if (!button) return;
    const id = button.closest("[data-instruction]").dataset.instruction;
    const url = "/api/v1/instructions/" + id + "/confirmations";
    if (await send([button], url, { kind: button.dataset.kind }, t("nurse.order_saved"))) await load();
  });

  if (T.live) T.live.on(load);
  load();
})();

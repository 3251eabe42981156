// The nurse's page: a reading she takes for the patient. Each value is read by the forms' number
// reader against the metric's plausible range; one she cannot have meant is said at its field
// and nothing is sent.
(function () {
  "use strict";
  const { t, api, fields } = window.Telemed;
  const form = document.getElementById("reading-form");
  if (!form) return;
  const result = document.getElementById("reading-result");
  const measured = form.elements.measured_at;
  const inputs = [...form.querySelectorAll("input[data-unit]")];

  function localNow() {
    const now = new Date();
    now.setSeconds(0, 0);
    return new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
  measured.value = localNow();
  fields.watch(form);

  function report(text, kind) {
    result.textContent = text;
    result.className = "result " + kind;
    result.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fields.clearAll(form);
    const readings = [];
    const sent = [];
    for (const input of inputs) {
      const read = fields.readNumber(input);
      if (read.ok && read.value !== null) {
        readings.push({ type: input.name, value: read.value, unit: input.dataset.unit });
        sent.push(input);
      }
    }
    if (fields.focusFirst(form)) {
      report(t("nurse.reading_fix"), "error");
      return;
    }
    if (!readings.length) {
      fields.show(inputs[0], "required");
      fields.focusFirst(form);
      report(t("nurse.reading_none"), "error");
      return;
    }
    const body = { measured_at: new Date(measured.value).toISOString(), readings: readings };
    const note = form.elements.note.value.trim();
    if (note) body.note = note;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/api/v1/patients/" + form.dataset.patient + "/readings", body);
      report(t("nurse.reading_saved"), "ok");
      for (const input of inputs) input.value = "";
      form.elements.note.value = "";
      measured.value = localNow();
    } catch (error) {
      const rest = fields.fromApi(form, error, (path) => {
        if (path === "measured_at") return measured;
        const index = /^readings\[(\d+)\]/.exec(path);
        return index ? sent[Number(index[1])] || null : null;
      });
      report(rest.length ? rest.join(" · ") : t("nurse.reading_fix"), "error");
    } finally {
      button.disabled = false;
    }
  });
})();

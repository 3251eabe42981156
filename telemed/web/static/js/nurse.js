// The nurse's page: a reading she takes for the patient.
(function () {
  "use strict";
  const { t, api, parseNumber, problemText } = window.Telemed;
  const form = document.getElementById("reading-form");
  if (!form) return;
  const result = document.getElementById("reading-result");
  const measured = form.elements.measured_at;

  function localNow() {
    const now = new Date();
    now.setSeconds(0, 0);
    return new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
  measured.value = localNow();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const readings = [];
    for (const input of form.querySelectorAll("input[data-unit]")) {
      const value = parseNumber(input.value);
      if (value !== null) readings.push({ type: input.name, value: value, unit: input.dataset.unit });
    }
    result.className = "result";
    if (!readings.length) {
      result.textContent = t("app.error", { detail: t("nurse.value") + "?" });
      result.classList.add("error");
      return;
    }
    const body = { measured_at: new Date(measured.value).toISOString(), readings: readings };
    const note = form.elements.note.value.trim();
    if (note) body.note = note;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/api/v1/patients/" + form.dataset.patient + "/readings", body);
      result.textContent = t("nurse.reading_saved");
      result.classList.add("ok");
      for (const input of form.querySelectorAll("input[data-unit]")) input.value = "";
      form.elements.note.value = "";
      measured.value = localNow();
    } catch (error) {
      result.textContent = t("app.error", { detail: problemText(error) });
      result.classList.add("error");
    } finally {
      button.disabled = false;
    }
  });
})();

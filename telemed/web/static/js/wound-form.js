// A new wound case from the nurse's phone: photos from the camera, observations, and the
// upload with its progress (XMLHttpRequest reports upload progress; fetch does not).
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, el, parseNumber, csrfToken, problemText } = T;
  const form = document.getElementById("wound-form");
  if (!form) return;
  const photos = form.elements.photos;
  const previews = document.getElementById("previews");
  const progress = document.getElementById("upload-progress");
  const result = document.getElementById("wound-result");
  const newWound = document.getElementById("new-wound");
  const pressure = document.getElementById("pressure");
  let urls = [];

  function chosenWound() {
    const radio = form.querySelector('input[name="wound"]:checked');
    return radio || { value: "new", dataset: {} };
  }

  function woundType() {
    const chosen = chosenWound();
    return chosen.value === "new" ? form.elements.wound_type.value : chosen.dataset.type;
  }

  function sync() {
    newWound.hidden = chosenWound().value !== "new";
    pressure.hidden = woundType() !== "pressure_ulcer";
  }
  form.addEventListener("change", sync);
  sync();

  photos.addEventListener("change", () => {
    result.textContent = "";
    result.className = "result";
    urls.forEach((u) => URL.revokeObjectURL(u));
    urls = [];
    previews.replaceChildren();
    for (const file of photos.files) {
      const url = URL.createObjectURL(file);
      urls.push(url);
      previews.append(el("img", { src: url, alt: file.name }));
    }
    if (photos.files.length) previews.append(el("p", { class: "muted" }, t("wound.chosen", { n: photos.files.length })));
  });

  function radio(name) {
    const checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
  }

  function number(name) {
    return parseNumber(form.elements[name].value);
  }

  function caseBody() {
    const observation = { wound_type: woundType() };
    for (const name of ["length_cm", "width_cm", "depth_cm", "pain"]) {
      const value = number(name);
      if (value !== null) observation[name] = value;
    }
    for (const name of ["exudate_amount", "odour"]) {
      const value = radio(name);
      if (value) observation[name] = value;
    }
    if (form.elements.exudate_type.value) observation.exudate_type = form.elements.exudate_type.value;
    if (observation.wound_type === "pressure_ulcer") {
      observation.pressure_category = form.elements.pressure_category.value;
    }
    const signs = [...form.querySelectorAll('input[name="infection_signs"]:checked')].map((c) => c.value);
    if (signs.length) observation.infection_signs = signs;
    const text = form.elements.free_text.value.trim();
    if (text) observation.free_text = text;
    const question = form.elements.nurse_question.value.trim();
    if (question) observation.nurse_question = question;
    observation.urgent = form.elements.urgent.checked;
    const body = {
      patient_id: form.dataset.patient,
      observation: observation,
      photo_consent: form.elements.photo_consent.checked,
    };
    const chosen = chosenWound();
    if (chosen.value === "new") {
      body.wound = {
        wound_type: observation.wound_type,
        body_location: form.elements.body_location.value,
        laterality: radio("laterality"),
      };
      const detail = form.elements.location_detail.value.trim();
      if (detail) body.wound.location_detail = detail;
    } else {
      body.wound_id = chosen.value;
    }
    return body;
  }

  // Why a photo was refused, in the page's language where the API gives a known code
  // ("photos[0]", "unsupported_format: ..."); anything else as the API says it.
  function refusal(error) {
    const body = error.body || {};
    const lines = [];
    for (const p of body.problems || []) {
      const index = /^photos\[(\d+)\]$/.exec(p.field || "");
      const code = String(p.message || "").split(":")[0];
      const key = "photo_error." + code;
      if (index && T.has(key)) {
        const file = photos.files[Number(index[1])];
        lines.push(t("wound.photo_n", { n: Number(index[1]) + 1, name: file ? file.name : "" }) + ": " + t(key));
      }
    }
    return lines.length ? lines.join(" · ") : problemText(error);
  }

  function report(text, kind) {
    result.textContent = text;
    result.className = "result " + kind;
    result.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  function upload(data) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/v1/wound-cases");
      xhr.setRequestHeader("x-csrftoken", csrfToken());
      xhr.setRequestHeader("accept", "application/json");
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const pct = Math.round((event.loaded / event.total) * 100);
        progress.value = pct;
        report(t("wound.uploading", { pct: pct }), "info");
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
        else reject({ status: xhr.status, body: xhr.response || {}, message: "HTTP " + xhr.status });
      });
      xhr.addEventListener("error", () => reject({ status: 0, body: {}, message: t("app.offline") }));
      xhr.send(data);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!photos.files.length) {
      report(t("wound.no_photos"), "error");
      photos.focus();
      return;
    }
    const data = new FormData();
    data.append("case", JSON.stringify(caseBody()));
    for (const file of photos.files) data.append("photos", file, file.name);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    try {
      const created = await upload(data);
      report(t("wound.created"), "ok");
      location.assign("/nurse/cases/" + created.id);
    } catch (error) {
      if (error.status === 401) location.assign("/login?next=" + encodeURIComponent(location.pathname));
      report(t("wound.refused", { detail: refusal(error) }), "error");
      progress.hidden = true;
    } finally {
      button.disabled = false;
    }
  });
})();

// A new wound case from the nurse's phone: photos from the camera, observations, and the
// upload with its progress (XMLHttpRequest reports upload progress; fetch does not).
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, el, csrfToken, fields } = T;
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
  fields.watch(form);

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

  // The case part; null when a number holds what the reader refused (said at its field).
  function caseBody() {
    const observation = { wound_type: woundType() };
    for (const name of ["length_cm", "width_cm", "depth_cm", "pain"]) {
      const read = fields.readNumber(form.elements[name]);
      if (read.ok && read.value !== null) observation[name] = read.value;
    }
    if (form.querySelector("input[data-number][aria-invalid=true]")) return null;
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

  // Where an API problem belongs: the observation's and the wound's fields by name, the
  // consent, the photos; a refused photo is named with its file.
  function fieldOf(path) {
    const name = path.split(".").pop();
    if (path === "case.photo_consent") return form.elements.photo_consent;
    if (/^photos(\[\d+\])?$/.test(path)) return photos;
    if (/^case\.(observation|wound)\./.test(path)) {
      const found = form.elements[name];
      if (found && found.nodeType) return found;
      const group = form.querySelector('input[name="' + name + '"]');
      return group || null;
    }
    return null;
  }

  function photoLines(error) {
    const lines = [];
    for (const p of (error.body && error.body.problems) || []) {
      const index = /^photos\[(\d+)\]$/.exec(p.field || "");
      if (!index) continue;
      const file = photos.files[Number(index[1])];
      lines.push(t("wound.photo_n", { n: Number(index[1]) + 1, name: file ? file.name : "" })
        + ": " + fields.message(p.code || "invalid", p.params));
    }
    return lines;
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
    fields.clearAll(form);
    const body = caseBody();
    if (body === null) {
      fields.focusFirst(form);
      report(t("wound.fix"), "error");
      return;
    }
    if (!photos.files.length) {
      report(t("wound.no_photos"), "error");
      photos.focus();
      return;
    }
    const data = new FormData();
    data.append("case", JSON.stringify(body));
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
      const named = photoLines(error);
      const rest = fields.fromApi(form, error, fieldOf);
      const detail = named.length ? named.join(" · ") : (rest.length ? rest.join(" · ") : t("wound.fix"));
      report(t("wound.refused", { detail: detail }), "error");
      progress.hidden = true;
    } finally {
      button.disabled = false;
    }
  });
})();

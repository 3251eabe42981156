// A wound case in the console: zoom a photo, compare with the same wound's earlier photos,
// the wound's size over time, and the specialist's instructions.
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, api, num, problemText } = T;

  const zoom = document.getElementById("zoom");
  const zoomImg = document.getElementById("zoom-img");
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-zoom]");
    if (!button) return;
    const img = button.querySelector("img");
    zoomImg.src = button.dataset.zoom;
    zoomImg.alt = img ? img.alt : "";
    zoom.showModal();
  });

  const compare = document.getElementById("compare-with");
  if (compare) {
    compare.addEventListener("change", () => {
      const option = compare.selectedOptions[0];
      document.getElementById("compare-img").src = option.value;
      document.getElementById("compare-img").alt = option.dataset.alt;
      document.getElementById("compare-caption").textContent = option.textContent;
    });
  }

  const sizes = JSON.parse(document.getElementById("sizes").textContent);
  const measured = sizes.filter((s) => s.area !== null);
  const plotBox = document.getElementById("size-plot");
  if (measured.length) {
    const summary = t("patient.size_summary", { count: measured.length, value: num(measured[measured.length - 1].area) });
    const { fig, box } = T.figure(t("wound.area"), summary);
    plotBox.append(fig);
    T.plot(box, {
      series: { x: measured.map((s) => Date.parse(s.at) / 1000), y: measured.map((s) => s.area) },
      unit: "cm²",
      height: 200,
    });
  } else {
    plotBox.append(T.el("p", { class: "empty" }, t("patient.no_readings")));
  }

  const form = document.getElementById("instruction-form");
  if (!form) return;
  const result = document.getElementById("instruction-result");
  T.fields.watch(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    T.fields.clearAll(form);
    const body = {};
    for (const name of ["cleansing", "dressing", "offloading", "compression", "change_frequency", "free_text"]) {
      const value = form.elements[name].value.trim();
      if (value) body[name] = value;
    }
    const days = T.fields.readNumber(form.elements.new_photos_in_days);
    if (!days.ok) {
      T.fields.focusFirst(form);
      return;
    }
    body.new_photos_in_days = days.value;
    body.hospital_visit = form.elements.hospital_visit.value;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/api/v1/wound-cases/" + form.dataset.case + "/instructions", body);
      result.textContent = t("wound.sent");
      result.className = "result ok";
      location.reload();
    } catch (error) {
      const rest = T.fields.fromApi(form, error, (path) => {
        const found = form.elements[path.split(".").pop()];
        return found && found.nodeType ? found : null;
      });
      result.textContent = t("app.error", { detail: rest.join(" · ") || problemText(error) });
      result.className = "result error";
      button.disabled = false;
    }
  });
})();

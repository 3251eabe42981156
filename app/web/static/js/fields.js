// A refused input is said at its field: a message under it in the page's language, built from
// the stable code (the reader's or the API's; docs/errors.md), linked by aria-describedby, the
// field marked aria-invalid, and the focus moved to the first problem. Shared by every form.
(function () {
  "use strict";
  const T = window.Telemed;
  const N = window.TelemedNumbers;
  const { t, has, el } = T;

  function shown(value) {
    return value === null || value === undefined ? "" : N.exact(value, T.lang);
  }

  // The message for a code, with the field's bounds and unit filled in.
  function message(code, params) {
    const p = Object.assign({}, params || {});
    const values = {
      min: shown(p.min), max: shown(p.max), unit: p.unit || "", scale: shown(p.scale),
      typed: p.typed || "",
    };
    if (code === "wrong_unit" && !values.unit) code = "no_unit";
    const key = "error." + code;
    return has(key) ? t(key, values) : t("error.invalid");
  }

  function errorId(input) {
    if (!input.id) input.id = "f-" + Math.random().toString(36).slice(2);
    return input.id + "-error";
  }

  function describedBy(input, id, on) {
    const ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter((x) => x && x !== id);
    if (on) ids.push(id);
    if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
    else input.removeAttribute("aria-describedby");
  }

  // Where the message goes: after the field, or after its group (a fieldset's legend).
  function anchor(input) {
    return input.closest("[data-field-anchor]") || input;
  }

  function show(input, code, params) {
    const id = errorId(input);
    let note = document.getElementById(id);
    if (!note) {
      note = el("p", { id: id, class: "field-error" });
      anchor(input).after(note);
    }
    note.textContent = message(code, params);
    note.dataset.code = code;
    input.setAttribute("aria-invalid", "true");
    describedBy(input, id, true);
  }

  function clear(input) {
    const id = errorId(input);
    const note = document.getElementById(id);
    if (note) note.remove();
    input.removeAttribute("aria-invalid");
    describedBy(input, id, false);
  }

  function clearAll(form) {
    for (const input of form.querySelectorAll("[aria-invalid=true]")) clear(input);
  }

  function focusFirst(form) {
    const first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
    return Boolean(first);
  }

  // Read a number field by its spec (data-number holds the spec's name in the page's specs, or
  // the spec itself as JSON); say the problem at the field. {ok, value}.
  function readNumber(input, spec) {
    const used = spec || specOf(input);
    const result = N.parse(input.value, used);
    if (result.ok) clear(input);
    else show(input, result.code === "required" && used.empty_code ? used.empty_code : result.code, result.params);
    return result;
  }

  let specs = null;
  function specOf(input) {
    const name = input.dataset.number || "";
    if (name.startsWith("{")) return JSON.parse(name);
    if (specs === null) {
      const block = document.getElementById("number-specs");
      specs = block ? JSON.parse(block.textContent) : {};
    }
    return specs[name] || {};
  }

  // Check every number field of a form as she types and when she leaves it.
  function watch(form, onChange) {
    const check = (event) => {
      const input = event.target;
      if (!input.matches || !input.matches("input[data-number]")) return;
      readNumber(input);
      if (onChange) onChange();
    };
    form.addEventListener("input", check);
    form.addEventListener("change", check);
  }

  // The API's refusal said at the fields it names (`find(problem.field)` gives the input);
  // returns the messages of problems no field of the form shows.
  function fromApi(form, error, find) {
    const body = (error && error.body) || {};
    const rest = [];
    for (const p of body.problems || []) {
      const input = find(p.field || "");
      if (input) show(input, p.code || "invalid", p.params);
      else rest.push(message(p.code || "invalid", p.params));
    }
    if (!(body.problems || []).length) rest.push(generic(error));
    focusFirst(form);
    return rest;
  }

  // A refusal without problems, by its status: never the server's own words.
  function generic(error) {
    const status = error && error.status;
    if (status === 0) return t("app.offline");
    if (status === 403 || status === 404) return t("app.not_found");
    if (status === 409) return t("error.conflict");
    if (status === 413) return t("error.too_large");
    if (status >= 500) return t("error.server");
    return t("error.invalid");
  }

  T.fields = { show, clear, clearAll, focusFirst, readNumber, watch, fromApi, message, generic, specOf };
})();

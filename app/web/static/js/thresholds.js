// A patient's thresholds form in the console. Every limit is read by the forms' number reader
// against the metric's plausible range (the spec comes with each field from the API); text it
// cannot read is said at the field and Save stays blocked, so nothing unread is ever sent. A
// field that holds a limit cannot be emptied to remove it: removing a limit is its own control,
// with a confirmation that names what the patient then loses and asks why. After saving, the
// form is drawn again from what the server stored, and the status line says it.
(function () {
  "use strict";
  const T = window.Telemed;
  const N = window.TelemedNumbers;
  const { t, api, el, say, fields } = T;

  const COLOUR = { red_low: "red", red_high: "red", yellow_low: "yellow", yellow_high: "yellow" };
  const SIDE = { red_low: "low", yellow_low: "low", red_high: "high", yellow_high: "high" };

  function exact(value) {
    return value === null || value === undefined ? "" : N.exact(value, T.lang);
  }

  function withUnit(value, spec) {
    return exact(value) + (spec && spec.unit ? " " + spec.unit : "");
  }

  function inputId(key, name) {
    return "thr-" + key.replace(/[^a-z0-9_]/gi, "-") + "-" + name;
  }

  function cell(rule, name, f) {
    const metric = t("metric." + rule.metric);
    const label = t("patient.threshold_" + name);
    const initial = exact(f.value);
    // A limit in force cannot be emptied: "Fjern grænse" removes it, on purpose.
    const spec = Object.assign({}, f.spec || {}, { required: initial !== "", empty_code: "value_required" });
    const input = el("input", {
      type: "text", inputmode: "decimal", autocomplete: "off", id: inputId(rule.key, name),
      name: rule.key + "|" + name, value: initial, "data-initial": initial,
      "data-number": JSON.stringify(spec), "aria-label": metric + ": " + label,
    });
    const parts = [input];
    if (f.spec && f.spec.unit) parts.push(el("span", { class: "unit" }, " " + f.spec.unit));
    if (f.removable && f.value !== null && f.value !== undefined) {
      parts.push(" ", el("button", {
        type: "button", class: "link remove-limit", "data-rule": rule.key, "data-field": name,
        "aria-label": t("patient.threshold_remove_label", { field: label, metric: metric }),
      }, t("patient.threshold_remove")));
    }
    // Removed by a null value before removals were explicit: perhaps a typo. Say so, and let
    // the specialist set it again or confirm the removal with a reason.
    let warning = null;
    if (f.unconfirmed_removal) {
      const id = input.id + "-unconfirmed";
      input.setAttribute("aria-describedby", id);
      warning = el("span", { class: "field-error", id: id }, t("patient.threshold_unconfirmed"), " ",
        el("button", {
          type: "button", class: "link remove-limit", "data-rule": rule.key, "data-field": name,
          "aria-label": t("patient.threshold_confirm_removal_label", { field: label, metric: metric }),
        }, t("patient.threshold_confirm_removal")));
    }
    const note = f.source === "override" && f.set_by_name
      ? el("span", { class: "muted" }, " " + t("patient.threshold_overridden", { name: f.set_by_name }))
      : null;
    return el("td", {}, el("span", { class: "limit", "data-field-anchor": "" }, ...parts), warning, note);
  }

  function table(rules, names) {
    const head = el("tr", {}, el("th", { scope: "col" }, t("patient.threshold_metric")),
      ...names.map((f) => el("th", { scope: "col" }, t("patient.threshold_" + f))));
    const rows = rules.map((rule) => {
      const byName = Object.fromEntries(rule.fields.map((f) => [f.field, f]));
      return el("tr", {}, el("th", { scope: "row" }, t("metric." + rule.metric)),
        ...names.map((name) => (byName[name] ? cell(rule, name, byName[name]) : el("td", {}))));
    });
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function form(rules) {
    const bands = rules.filter((r) => r.kind === "absolute");
    const inr = rules.filter((r) => r.kind === "inr");
    if (!bands.length && !inr.length) return el("p", { class: "empty" }, t("patient.no_thresholds"));
    return el("form", { class: "threshold-form", id: "threshold-form", novalidate: true },
      bands.length ? table(bands, ["red_low", "yellow_low", "yellow_high", "red_high"]) : null,
      inr.length ? table(inr, ["urgent_low", "low", "high", "urgent_high"]) : null,
      el("label", { for: "threshold-reason" }, t("patient.threshold_reason")),
      el("input", { id: "threshold-reason", name: "reason", maxlength: "1000" }),
      el("p", {}, el("button", { type: "submit", class: "button primary", id: "threshold-save" }, t("app.save"))));
  }

  // Save is blocked while any field holds what the reader refused.
  function sync(formEl) {
    const save = formEl.querySelector("#threshold-save");
    if (save) save.disabled = Boolean(formEl.querySelector("input[data-number][aria-invalid=true]"));
  }

  // The input an API problem names: "<rule_key>.<field>", "changes[i]…" or "reason".
  function finder(formEl, changes) {
    return (path) => {
      if (path === "reason") return formEl.elements.reason;
      const indexed = /^changes\[(\d+)\]/.exec(path);
      if (indexed && changes[Number(indexed[1])]) {
        const c = changes[Number(indexed[1])];
        return formEl.querySelector('[name="' + c.rule_key + "|" + c.field + '"]');
      }
      const dot = path.lastIndexOf(".");
      const named = formEl.querySelector('[name="' + path.slice(0, dot) + "|" + path.slice(dot + 1) + '"]');
      return named;
    };
  }

  // What the server now holds for the fields just changed, from the answer it gave.
  function stored(out, changes) {
    const rules = out.programs.flatMap((p) => p.rules);
    return changes.map((c) => {
      const rule = rules.find((r) => r.key === c.rule_key);
      const f = rule && rule.fields.find((x) => x.field === c.field);
      const value = f && f.value !== null ? withUnit(f.value, f.spec) : t("patient.threshold_none");
      return t("metric." + (rule ? rule.metric : "")) + " " + t("patient.threshold_" + c.field) + " " + value;
    }).join("; ");
  }

  function mount(box, rules, base, onSaved) {
    box.replaceChildren(form(rules));
    const formEl = box.querySelector("form");
    if (!formEl) return;
    fields.watch(formEl, () => sync(formEl));

    formEl.addEventListener("submit", async (event) => {
      event.preventDefault();
      fields.clearAll(formEl);
      const changes = [];
      for (const input of formEl.querySelectorAll("input[data-initial]")) {
        if (input.value.trim() === input.dataset.initial) continue;
        const read = fields.readNumber(input);
        if (!read.ok) continue;
        const [rule_key, field] = input.name.split("|");
        changes.push({ rule_key, field, value: read.value });
      }
      sync(formEl);
      if (fields.focusFirst(formEl)) {
        say(t("patient.threshold_fix"), "error");
        return;
      }
      if (!changes.length) {
        say(t("patient.threshold_unchanged"), "info");
        return;
      }
      const reason = formEl.elements.reason.value.trim();
      if (!reason) {
        fields.show(formEl.elements.reason, "reason_required");
        fields.focusFirst(formEl);
        say(t("patient.threshold_fix"), "error");
        return;
      }
      try {
        await api("PUT", base + "/thresholds", { reason, changes });
      } catch (error) {
        const rest = fields.fromApi(formEl, error, finder(formEl, changes));
        say(rest.length ? rest.join(" · ") : t("patient.threshold_fix"), "error");
        return;
      }
      // Drawn again from what the server holds now, and said so.
      const out = await onSaved();
      say(t("patient.threshold_saved_values", { stored: stored(out, changes) }), "ok");
    });

    // One handler per box, replaced with each drawing (it holds the rules drawn).
    box.onclick = (event) => {
      const button = event.target.closest("button.remove-limit");
      if (button) confirmRemoval(button, rules, base, onSaved);
    };
  }

  function confirmRemoval(button, rules, base, onSaved) {
    const key = button.dataset.rule, name = button.dataset.field;
    const rule = rules.find((r) => r.key === key);
    const f = rule.fields.find((x) => x.field === name);
    const metric = t("metric." + rule.metric);
    const consequence = t("patient.threshold_remove_consequence", {
      field: t("patient.threshold_" + name),
      value: withUnit(f.value === null ? f.default : f.value, f.spec), metric: metric,
      colour: t("patient.threshold_colour_" + (COLOUR[name] || "red")),
      side: t("patient.threshold_side_" + (SIDE[name] || "low")),
    });
    const dialog = el("dialog", { class: "confirm-dialog", "aria-labelledby": "remove-title",
      "aria-describedby": "remove-consequence" },
      el("form", { method: "dialog", novalidate: true },
        el("h2", { id: "remove-title" }, t("patient.threshold_remove_title")),
        el("p", { id: "remove-consequence" }, consequence),
        el("label", { for: "remove-reason" }, t("patient.threshold_remove_reason")),
        el("textarea", { id: "remove-reason", name: "removal_reason", rows: "2", maxlength: "1000" }),
        el("p", { class: "result", id: "remove-result", role: "alert" }),
        el("p", {},
          el("button", { type: "submit", class: "button primary", value: "remove" }, t("patient.threshold_remove_confirm")), " ",
          el("button", { type: "button", class: "button secondary", value: "cancel" }, t("app.cancel")))));
    document.body.append(dialog);
    const reasonEl = dialog.querySelector("textarea");
    const close = () => { dialog.close(); dialog.remove(); button.focus(); };
    dialog.querySelector('button[value="cancel"]').addEventListener("click", close);
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(); });
    dialog.querySelector("form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const why = reasonEl.value.trim();
      if (!why) {
        fields.show(reasonEl, "removal_reason_required");
        reasonEl.focus();
        return;
      }
      fields.clear(reasonEl);
      const change = { rule_key: key, field: name, remove: true, removal_reason: why };
      try {
        await api("PUT", base + "/thresholds", { reason: why, changes: [change] });
      } catch (error) {
        const rest = fields.fromApi(dialog, error, () => reasonEl);
        dialog.querySelector("#remove-result").textContent = rest.join(" · ");
        return;
      }
      dialog.close();
      dialog.remove();
      const out = await onSaved();
      say(t("patient.threshold_removed", { stored: stored(out, [change]) }), "ok");
    });
    dialog.showModal();
    reasonEl.focus();
  }

  T.thresholdForm = { mount };
})();

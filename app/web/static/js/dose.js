// A weekly anticoagulant dose as the specialist confirms it and the carers read it: exactly the
// number stored, with its unit, and in tablets of the patient's product where the strength is
// known (the read-back record of alerts.doses, sent with the refusal or kept with the
// instruction).
(function () {
  "use strict";
  const T = window.Telemed;
  const N = window.TelemedNumbers;
  const { t, el } = T;

  function exact(value) {
    return N.exact(value, T.lang);
  }

  function weekly(mg) {
    return t("dose.weekly", { mg: exact(mg) });
  }

  // 7, 7½, ½: tablets are given whole or halved.
  function count(n) {
    const whole = Math.floor(n);
    const half = n - whole === 0.5;
    return (whole || !half ? String(whole) : "") + (half ? "½" : "");
  }

  function tablets(dose) {
    if (!dose || !dose.product) return t("dose.no_product");
    const values = { product: dose.product_name, strength: exact(dose.tablet_mg) };
    if (dose.tablets_per_week === null || dose.tablets_per_week === undefined) {
      return t("dose.no_tablets", values);
    }
    return t("dose.tablets", Object.assign(values, { tablets: count(dose.tablets_per_week) }));
  }

  function change(percent) {
    if (percent === null || percent === undefined) return "";
    return (percent > 0 ? "+" : "") + exact(percent);
  }

  function reasons(dose) {
    const usual = dose.usual_weekly_mg || [];
    return (dose.reasons || []).map((r) => t("dose.reason." + r, {
      low: exact(usual[0]), high: exact(usual[1]), limit: exact(dose.max_change_percent),
      product: dose.product_name || "",
    }));
  }

  // The read-back the specialist must confirm: current, new, change, tablets and why.
  function readback(dose, id) {
    const current = dose.current_weekly_mg === null
      ? t("dose.readback_no_current")
      : t("dose.readback_current", { dose: weekly(dose.current_weekly_mg) });
    const lines = [
      current,
      t("dose.readback_new", { dose: weekly(dose.new_weekly_mg) }) + " " + tablets(dose),
    ];
    if (dose.change_percent !== null) lines.push(t("dose.readback_change", { change: change(dose.change_percent) }));
    return el("div", { class: "readback", role: "group", "aria-labelledby": id + "-title", "data-readback": "" },
      el("h3", { id: id + "-title" }, t("dose.readback_title")),
      el("ul", { class: "plain readback-lines" }, ...lines.map((line) => el("li", {}, line))),
      el("ul", { class: "readback-reasons" }, ...reasons(dose).map((line) => el("li", {}, line))),
      el("p", { class: "check" },
        el("input", { type: "checkbox", id: id + "-confirm", name: "readback_confirmed" }),
        el("label", { for: id + "-confirm" }, t("dose.confirm"))),
      el("p", { class: "field-error", id: id + "-confirm-error", hidden: true }, t("dose.confirm_needed")),
      el("button", { type: "submit", class: "button primary", "data-confirm": "" }, t("dose.confirm_send")));
  }

  // The carers' lines: the dose with its unit, in tablets, and the read-back if one was made.
  function lines(fields) {
    const dose = fields.dose;
    const out = [t("dose.new_dose") + ": " + weekly(fields.weekly_dose_mg)];
    if (dose) {
      out.push(tablets(dose));
      if (dose.confirmed && dose.current_weekly_mg === null) {
        out.push(t("dose.confirmed_readback_first"));
      } else if (dose.confirmed) {
        out.push(t("dose.confirmed_readback", {
          current: weekly(dose.current_weekly_mg), new: weekly(dose.new_weekly_mg),
          change: change(dose.change_percent),
        }));
      }
    }
    return out;
  }

  T.dose = { exact, weekly, tablets, change, readback, lines };
})();

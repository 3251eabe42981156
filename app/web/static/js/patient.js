// A patient in the console: plots of each metric over 7/30/90 days with the patient's threshold
// bands and alert markers, the TTR of an AK patient, the alerts, and the thresholds form.
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, api, el, num, when, say, problemText } = T;
  const view = JSON.parse(document.getElementById("patient-view").textContent);
  const base = "/api/v1/patients/" + view.id;
  const plotsBox = document.getElementById("plots");
  const empty = document.getElementById("plots-empty");
  const state = { days: 30, thresholds: null, alerts: [] };

  // 7 days: every reading; longer: min/avg/max per bucket, so a plot stays readable.
  const BUCKET = { 7: null, 30: "6h", 90: "1d" };

  async function readings(days) {
    const to = new Date();
    const from = new Date(to.getTime() - days * 86400e3);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
    if (BUCKET[days]) query.set("bucket", BUCKET[days]);
    else query.set("limit", "20000");
    const rows = await api("GET", base + "/readings?" + query.toString());
    const byMetric = {};
    for (const row of rows) {
      const s = (byMetric[row.metric] = byMetric[row.metric] || { x: [], y: [], min: [], max: [], at: [] });
      const at = row.bucket || row.measured_at;
      s.x.push(Date.parse(at) / 1000);
      s.y.push(row.avg !== undefined ? row.avg : row.value);
      s.min.push(row.min !== undefined ? row.min : null);
      s.max.push(row.max !== undefined ? row.max : null);
      s.at.push(at);
    }
    for (const s of Object.values(byMetric)) {
      if (s.min.every((v) => v === null)) { delete s.min; delete s.max; }
    }
    return { byMetric, range: [from.getTime() / 1000, to.getTime() / 1000] };
  }

  function bandsFor(metric) {
    const found = (state.thresholds || []).find((b) => b.metric === metric);
    return found || null;
  }

  function markersFor(metric, range) {
    const x = [], y = [];
    for (const a of state.alerts) {
      if (a.metric !== metric || a.value === null || a.value === undefined) continue;
      const at = Date.parse(a.measured_at || a.first_at || a.opened_at) / 1000;
      if (at >= range[0] && at <= range[1]) { x.push(at); y.push(a.value); }
    }
    return { x, y };
  }

  async function draw() {
    plotsBox.setAttribute("aria-busy", "true");
    let data;
    try {
      data = await readings(state.days);
    } catch (error) {
      say(t("app.error", { detail: problemText(error) }), "error");
      return;
    }
    plotsBox.replaceChildren();
    let shown = 0;
    for (const metric of view.metrics) {
      const series = data.byMetric[metric.code];
      if (!series) continue;
      shown += 1;
      const title = t("metric." + metric.code) + (metric.label ? " (" + metric.label + ")" : "");
      const latest = series.y[series.y.length - 1];
      const summary = t("patient.plot_label", {
        metric: t("metric." + metric.code), n: state.days, count: series.x.length, value: num(latest),
      });
      const { fig, box } = T.figure(title, summary);
      fig.dataset.metric = metric.code;
      plotsBox.append(fig);
      const therapeutic = metric.code === "inr" ? view.inr_range : null;
      T.plot(box, {
        series: series,
        unit: metric.label,
        zones: T.zonesFrom(bandsFor(metric.code), therapeutic),
        markers: markersFor(metric.code, data.range),
        xRange: data.range,
      });
    }
    empty.hidden = shown > 0;
    plotsBox.removeAttribute("aria-busy");
  }

  for (const button of document.querySelectorAll(".period button")) {
    button.addEventListener("click", () => {
      state.days = Number(button.dataset.days);
      for (const b of document.querySelectorAll(".period button")) {
        b.setAttribute("aria-pressed", String(b === button));
      }
      draw();
    });
  }

  // --- thresholds: the bands behind the plots, and the form to change them -------------
  const thresholdsBox = document.getElementById("thresholds");

  function bandsOf(rule) {
    if (rule.kind === "absolute") return Object.assign({ metric: rule.metric }, rule.rule.bands);
    if (rule.kind === "inr") {
      const r = rule.rule;
      return { metric: "inr", red_low: r.urgent_low, yellow_low: r.low, yellow_high: r.high, red_high: r.urgent_high };
    }
    return null;
  }

  // Drawn from what the server holds, also right after a change (the form re-reads it).
  async function loadThresholds() {
    let out;
    try {
      out = await api("GET", base + "/thresholds");
    } catch (error) {
      thresholdsBox.replaceChildren(el("p", { class: "empty" }, t("patient.no_thresholds")));
      return null;
    }
    const rules = out.programs.flatMap((p) => p.rules);
    state.thresholds = rules.map(bandsOf).filter(Boolean);
    const inr = rules.find((r) => r.kind === "inr");
    if (inr) view.inr_range = [inr.rule.low, inr.rule.high];
    T.thresholdForm.mount(thresholdsBox, rules, base, async () => {
      const fresh = await loadThresholds();
      await loadTtr();
      draw();
      return fresh;
    });
    return out;
  }

  // --- alerts: markers on the plots and the list -------------------------------------
  const alertsBox = document.getElementById("patient-alerts");

  async function loadAlerts() {
    let alerts = [];
    try {
      alerts = await api("GET", base + "/alerts?state=all&limit=200");
    } catch (error) {
      alerts = [];
    }
    state.alerts = alerts.map((a) => ({ metric: a.metric, value: a.last_value, measured_at: a.last_measured_at }));
    if (!alerts.length) {
      alertsBox.replaceChildren(el("p", { class: "empty" }, t("patient.no_alerts")));
      return;
    }
    alertsBox.replaceChildren(el("ul", { class: "plain" }, ...alerts.map((a) => el("li", { class: "card sev-" + a.severity },
      el("span", { class: "badge sev-" + a.severity }, t("severity." + a.severity)), " ",
      t("metric." + a.metric) + (a.last_value === null ? "" : " " + num(a.last_value)), " · ",
      t("rule." + a.rule_key.split(":")[0]), " · ", t("state." + a.state), " · ", when(a.last_measured_at),
      T.alertNotes(a)))));
  }

  // --- TTR of an AK patient ----------------------------------------------------------
  async function loadTtr() {
    const box = document.getElementById("ttr-value");
    if (!box) return;
    try {
      const out = await api("GET", base + "/ttr");
      box.textContent = out.percent === null
        ? t("patient.ttr_none", { reason: out.reason || "" })
        : t("patient.ttr_value", { value: num(out.percent), days: num(out.days_total) });
    } catch (error) {
      box.textContent = t("patient.ttr_none", { reason: problemText(error) });
    }
  }

  T.patientPage = { view, state, draw, base };
  Promise.all([loadThresholds(), loadAlerts(), loadTtr()]).then(draw);
  if (T.live) T.live.on(() => loadAlerts().then(draw));
})();

// Time-series plots with uPlot: a line (or min–max band with its average), the patient's
// threshold bands drawn behind it, and alert markers as points.
(function () {
  "use strict";
  const { t, el, num, locale } = window.Telemed;

  // Month and day names in the page's language, for uPlot's axis and legend dates.
  const names = (function () {
    const month = (style) => [...Array(12).keys()].map((m) =>
      new Intl.DateTimeFormat(locale, { month: style, timeZone: "UTC" }).format(Date.UTC(2024, m, 15)));
    // 2024-09-01 was a Sunday: uPlot counts weekdays from Sunday.
    const day = (style) => [...Array(7).keys()].map((d) =>
      new Intl.DateTimeFormat(locale, { weekday: style, timeZone: "UTC" }).format(Date.UTC(2024, 8, 1 + d)));
    return { MMMM: month("long"), MMM: month("short"), WWWW: day("long"), WWW: day("short") };
  })();
  const DAY_S = 86400;
  const tickDay = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", timeZone: "Europe/Copenhagen" });
  const tickTime = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", timeZone: "Europe/Copenhagen" });

  const BAND_FILL = {
    red: "rgba(200, 30, 30, 0.13)",
    yellow: "rgba(230, 170, 0, 0.16)",
    green: "rgba(30, 140, 60, 0.14)",
  };

  // Fill the y ranges of `zones` ([{from, to, colour}], open ends as null) behind the series.
  function zonesPlugin(zones) {
    return {
      hooks: {
        drawClear: [
          (u) => {
            const { ctx, bbox } = u;
            ctx.save();
            for (const zone of zones) {
              const top = zone.to === null ? bbox.top : u.valToPos(zone.to, "y", true);
              const bottom = zone.from === null ? bbox.top + bbox.height : u.valToPos(zone.from, "y", true);
              const y0 = Math.max(bbox.top, Math.min(top, bottom));
              const y1 = Math.min(bbox.top + bbox.height, Math.max(top, bottom));
              if (y1 <= y0) continue;
              ctx.fillStyle = BAND_FILL[zone.colour] || BAND_FILL.yellow;
              ctx.fillRect(bbox.left, y0, bbox.width, y1 - y0);
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  // Zones from threshold bands {red_low, yellow_low, yellow_high, red_high} (any may be null),
  // and a therapeutic range [low, high] in green.
  function zonesFrom(bands, therapeutic) {
    const zones = [];
    if (bands) {
      const { red_low, yellow_low, yellow_high, red_high } = bands;
      if (red_low !== null && red_low !== undefined) zones.push({ from: null, to: red_low, colour: "red" });
      if (yellow_low !== null && yellow_low !== undefined) {
        zones.push({ from: red_low ?? null, to: yellow_low, colour: "yellow" });
      }
      if (yellow_high !== null && yellow_high !== undefined) {
        zones.push({ from: yellow_high, to: red_high ?? null, colour: "yellow" });
      }
      if (red_high !== null && red_high !== undefined) zones.push({ from: red_high, to: null, colour: "red" });
    }
    if (therapeutic) zones.push({ from: therapeutic[0], to: therapeutic[1], colour: "green" });
    return zones;
  }

  // The period shown: the one asked for, else the data's, at least a week around one point.
  function xRange(spec) {
    if (spec.xRange) return spec.xRange;
    const xs = spec.series.x;
    const lo = Math.min(...xs), hi = Math.max(...xs);
    return hi - lo < 7 * DAY_S ? [lo - 7 * DAY_S, hi + 7 * DAY_S] : [lo, hi];
  }

  // series: {x: [unix s], y: [..]} or with min/max arrays too; markers: {x: [..], y: [..]}.
  function plot(container, spec) {
    const limits = [];
    for (const z of spec.zones || []) {
      if (z.from !== null) limits.push(z.from);
      if (z.to !== null) limits.push(z.to);
    }
    const markers = spec.markers && spec.markers.x.length ? spec.markers : null;
    const tables = [[spec.series.x, spec.series.y].concat(spec.series.min ? [spec.series.min, spec.series.max] : [])];
    if (markers) tables.push([markers.x, markers.y]);
    const data = tables.length > 1 ? uPlot.join(tables) : tables[0];

    const series = [
      { label: t("patient.time") },
      {
        label: spec.series.min ? t("patient.avg") : t("patient.value"),
        stroke: "#1d4f91",
        width: 2,
        spanGaps: true,
        points: { show: true, size: 5 },
        value: (u, v) => num(v),
      },
    ];
    const bands = [];
    if (spec.series.min) {
      series.push(
        { label: t("patient.range") + " (min)", stroke: "#7d9cc9", width: 1, spanGaps: true, value: (u, v) => num(v) },
        { label: t("patient.range") + " (max)", stroke: "#7d9cc9", width: 1, spanGaps: true, value: (u, v) => num(v) },
      );
      bands.push({ series: [3, 2], fill: "rgba(29, 79, 145, 0.12)" });
    }
    if (markers) {
      series.push({
        label: t("patient.alert_marker"),
        stroke: "#b00020",
        fill: "#b00020",
        width: 0,
        paths: () => null,
        points: { show: true, size: 11, stroke: "#b00020", fill: "#ffffff", width: 3 },
        value: (u, v) => num(v),
      });
    }
    const width = Math.max(280, container.clientWidth || 600);
    const opts = {
      width: width,
      height: spec.height || 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Europe/Copenhagen"),
      fmtDate: (template) => uPlot.fmtDate(template, names),
      scales: {
        x: { time: true, range: () => xRange(spec) },
        y: {
          range: (u, min, max) => {
            const all = limits.concat([min, max]).filter((v) => v !== null && Number.isFinite(v));
            const lo = Math.min(...all), hi = Math.max(...all);
            const pad = (hi - lo) * 0.08 || 1;
            return [lo - pad, hi + pad];
          },
        },
      },
      axes: [
        {
          // Ticks as a Danish or English reader writes dates, not uPlot's month/day.
          values: (u, splits, axisIdx, space, incr) => splits.map((v) =>
            incr < DAY_S ? tickTime.format(new Date(v * 1e3)) : tickDay.format(new Date(v * 1e3))),
        },
        { label: spec.unit || "", size: 60 },
      ],
      series: series,
      bands: bands,
      plugins: [zonesPlugin(spec.zones || [])],
      legend: { show: true },
    };
    container.replaceChildren();
    const chart = new uPlot(opts, data, container);
    const resize = () => chart.setSize({ width: Math.max(280, container.clientWidth), height: opts.height });
    window.addEventListener("resize", resize);
    return chart;
  }

  window.Telemed.plot = plot;
  window.Telemed.zonesFrom = zonesFrom;
  window.Telemed.figure = function (title, summary) {
    const box = el("div", { class: "plot-canvas", role: "img", "aria-label": summary });
    const fig = el("figure", { class: "plot" }, el("figcaption", {}, el("strong", {}, title), " ", el("span", { class: "muted" }, summary)), box);
    return { fig, box };
  };
})();

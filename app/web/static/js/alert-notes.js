// What an alert's card says beyond its rule: that the reading it is about came late (when it
// was measured and when it arrived), and, when the alert says the rules failed, which rule and
// what became of the reading (alerts.failures).
(function () {
  "use strict";
  const T = window.Telemed;
  const { t, when } = T;

  T.alertNotes = function (a) {
    let notes = "";
    const detail = a.detail || {};
    if (a.rule_key.split(":")[0] === "alerting" && detail.rule_key) {
      notes += " · " + t("alert.failed", {
        rule: detail.rule_key, outcome: t("alert.failed." + detail.outcome),
        measured: when(detail.measured_at),
      });
    }
    if (a.late) {
      notes += " · " + t("alert.late", {
        measured: when(a.reading_measured_at), received: when(a.reading_received_at),
      });
    }
    return notes;
  };
})();

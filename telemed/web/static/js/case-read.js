// The nurse confirms she has read the specialist's instructions.
(function () {
  "use strict";
  const { t, api, say, problemText } = window.Telemed;
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("#confirm-read");
    if (!button) return;
    button.disabled = true;
    try {
      await api("POST", "/api/v1/wound-cases/" + button.dataset.case + "/read");
      say(t("app.saved"), "ok");
      window.Telemed.live.refresh();
    } catch (error) {
      say(t("app.error", { detail: problemText(error) }), "error");
      button.disabled = false;
    }
  });
})();

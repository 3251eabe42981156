// The nurse confirms she has read the specialist's instructions.
(function () {
  "use strict";
  const { t, send } = window.Telemed;
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("#confirm-read");
    if (!button) return;
    const url = "/api/v1/wound-cases/" + button.dataset.case + "/read";
    if (await send([button], url, undefined, t("app.saved"))) window.Telemed.live.refresh();
  });
})();

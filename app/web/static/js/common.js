// Shared by every page: texts, the CSRF token, JSON API calls and the status line.
(function () {
  "use strict";

  const texts = JSON.parse(document.getElementById("texts").textContent || "{}");
  const lang = document.documentElement.lang || "da";
  const locale = lang === "da" ? "da-DK" : "en-GB";
  const zone = "Europe/Copenhagen";

  function t(key, values) {
    let text = Object.prototype.hasOwnProperty.call(texts, key) ? texts[key] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  function has(key) {
    return Object.prototype.hasOwnProperty.call(texts, key);
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || "HTTP " + status);
      this.status = status;
      this.body = body || {};
    }
  }

  // A refusal as the page says it: each problem by its stable code (docs/errors.md), in the
  // page's language; never the server's or a library's own words.
  function problemText(error) {
    const fields = window.Telemed.fields;
    const body = (error && error.body) || {};
    const problems = body.problems || [];
    if (!problems.length) return fields.generic(error);
    return problems.map((p) => fields.message(p.code || "invalid", p.params)).join(" · ");
  }

  function signInAgain() {
    location.assign("/login?next=" + encodeURIComponent(location.pathname));
  }

  async function api(method, url, body) {
    const headers = { accept: "application/json" };
    const init = { method: method, headers: headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") {
      headers["x-csrftoken"] = csrfToken();
    }
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    if (response.status === 401) {
      signInAgain();
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, data);
    }
    return data;
  }

  // Build an element; children are nodes or text (never parsed as HTML).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const timeFormat = new Intl.DateTimeFormat(locale, {
    timeZone: zone, day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit",
  });
  const numberFormat = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });

  function when(iso) {
    return iso ? timeFormat.format(new Date(iso)) : "";
  }

  function num(value) {
    return value === null || value === undefined ? "" : numberFormat.format(value);
  }

  function say(message, kind) {
    const status = document.getElementById("status");
    if (!status) return;
    status.textContent = message;
    status.className = "status " + (kind || "info");
  }

  // POST with `buttons` disabled meanwhile. Says `done` and returns true; or says what went
  // wrong, enables the buttons again and returns false.
  async function send(buttons, url, body, done) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("POST", url, body);
    } catch (error) {
      say(t("app.error", { detail: problemText(error) }), "error");
      buttons.forEach((b) => { b.disabled = false; });
      return false;
    }
    say(done, "ok");
    return true;
  }

  window.Telemed = {
    t, has, api, ApiError, problemText, el, when, num, say, send, csrfToken, lang,
    locale, zone,
  };
})();

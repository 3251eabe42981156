// The one reader of numbers typed into clinical forms (thresholds, doses, readings, wound sizes,
// pain). It returns the number, or a stable code saying why the text cannot be read; it never
// guesses, drops or turns text into null. The rules, with examples, are in docs/web.md; the
// cases in tests/number_cases.json are run against this file by the test suite.
(function (root) {
  "use strict";

  // A unit typed after a number: letters, %, °, µ, / and dots, at most 12 characters.
  const UNIT_LIKE = /^[a-zæøåµ°%/.\s]{1,12}$/i;
  const TOKEN = /^([+-]?)([0-9.,]+)(.*)$/;

  function fail(code, params) {
    return { ok: false, code: code, params: params || {} };
  }

  function params(spec) {
    return { min: spec.min, max: spec.max, unit: spec.unit || "", scale: spec.scale };
  }

  // "17,5" and "17.5" alike; a lone separator followed by exactly three digits could be a
  // thousands separator ("1.000", "17,500"), so it is refused rather than guessed.
  function decimal(sign, digits) {
    const separators = digits.replace(/[0-9]/g, "");
    if (!/[0-9]/.test(digits)) return fail("not_a_number");
    if (separators.length > 1) return fail("ambiguous_number");
    if (separators.length === 1) {
      const [whole, fraction] = digits.split(/[.,]/);
      if (fraction === "") return fail("not_a_number");
      if (fraction.length === 3 && /[1-9]/.test(whole)) return fail("ambiguous_number");
    }
    const value = Number(sign + digits.replace(",", "."));
    return Number.isFinite(value) ? { ok: true, value: value } : fail("not_a_number");
  }

  function unitOf(rest, spec) {
    const typed = rest.toLowerCase().replace(/\s+/g, " ").trim();
    if (typed === "") return null;
    const own = (spec.units || []).concat(spec.unit ? [spec.unit.toLowerCase()] : []);
    if (own.includes(typed)) return null;
    if (/^[0-9]/.test(typed)) return fail("ambiguous_number"); // "1 000"
    if (UNIT_LIKE.test(typed)) return fail("wrong_unit", { typed: rest.trim() });
    return fail("not_a_number");
  }

  function read(text, spec) {
    const fraction = /^(.*?)\s*\/\s*([0-9]+)$/.exec(text);
    if (fraction) {
      if (!spec.scale) return fail("not_a_number");
      if (Number(fraction[2]) !== spec.scale) return fail("wrong_scale");
      const numerator = TOKEN.exec(fraction[1]);
      if (!numerator || numerator[3].trim() !== "") return fail("not_a_number");
      return decimal(numerator[1], numerator[2]);
    }
    const match = TOKEN.exec(text);
    if (!match) return fail("not_a_number");
    const number = decimal(match[1], match[2]);
    if (!number.ok) return number;
    return unitOf(match[3], spec) || number;
  }

  // parse(text, spec) -> {ok: true, value: number | null} or {ok: false, code, params}.
  // spec: {unit, units, min, max, min_exclusive, whole, scale, required} (telemed.numbers).
  function parse(text, spec) {
    spec = spec || {};
    const raw = text === null || text === undefined ? "" : String(text);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(raw)) {
      return Object.assign(fail("not_a_number"), { params: params(spec) });
    }
    const cleaned = raw.replace(/\u2212/g, "-").replace(/\s+/g, " ").trim();
    if (cleaned === "") {
      return spec.required ? fail("required", params(spec)) : { ok: true, value: null };
    }
    const found = read(cleaned, spec);
    if (!found.ok) return fail(found.code, Object.assign(params(spec), found.params));
    const value = found.value;
    const low = spec.min === null || spec.min === undefined ? null : spec.min;
    const high = spec.max === null || spec.max === undefined ? null : spec.max;
    const belowLow = low !== null && (spec.min_exclusive ? value <= low : value < low);
    if (belowLow || (high !== null && value > high)) return fail("out_of_range", params(spec));
    if (spec.whole && !Number.isInteger(value)) return fail("not_whole", params(spec));
    return { ok: true, value: value };
  }

  // A number exactly as stored, with the decimal comma of Danish ("17,5"), never rounded.
  function exact(value, lang) {
    if (value === null || value === undefined) return "";
    const text = String(value);
    return lang === "en" ? text : text.replace(".", ",");
  }

  const api = { parse: parse, exact: exact };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.TelemedNumbers = api;
})(typeof window === "object" ? window : this);

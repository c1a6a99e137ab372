// An esox transformer written in JavaScript: turns secret keys into environment variable names.
//
// `db.password` and `api-key` become `DB_PASSWORD` and `API_KEY` (every character outside
// [A-Za-z0-9_] becomes `_`, letters are upper-cased, a leading digit gets a `_` in front), so a
// Secret fetched from a store with dotted or dashed names can be used with `envFrom`.
//
// Config (JSON, all optional):
//   {"prefix": "APP_",                      prepended to every resulting name
//    "rename": {"db.pass": "DB_PASSWORD"},  exact names for some keys (not normalized)
//    "drop": ["debug"],                     keys to leave out (original names)
//    "case": "upper"}                       "upper" (default), "lower" or "keep"
//
// Two keys that end up with the same name are an error naming that name, rather than one
// silently overwriting the other. Values pass through untouched (they are bytes, never decoded).
//
// Built into a WebAssembly component with componentize-js against esox's WIT contract
// (wit/plugin.wit, world transformer-plugin); see build.sh.

// A `result<_, plugin-error>` error is a thrown plain object (not an Error, which would trap).
function fail(message, key) {
  throw { message, key };
}

function parseConfig(text) {
  let cfg;
  try {
    cfg = JSON.parse(text && text.trim() ? text : "{}");
  } catch (e) {
    fail(`config is not JSON: ${e.message}`);
  }
  if (cfg === null || typeof cfg !== "object" || Array.isArray(cfg)) {
    fail("config must be a JSON object");
  }
  const { prefix = "", rename = {}, drop = [], case: letterCase = "upper" } = cfg;
  if (typeof prefix !== "string") fail("prefix must be a string");
  if (rename === null || typeof rename !== "object" || Array.isArray(rename)
      || Object.values(rename).some((v) => typeof v !== "string" || v === "")) {
    fail("rename must be an object of key to non-empty string");
  }
  if (!Array.isArray(drop) || drop.some((v) => typeof v !== "string")) {
    fail("drop must be an array of strings");
  }
  if (!["upper", "lower", "keep"].includes(letterCase)) {
    fail('case must be "upper", "lower" or "keep"');
  }
  return { prefix, rename: new Map(Object.entries(rename)), drop: new Set(drop), letterCase };
}

function envName(key, letterCase) {
  let name = key.replace(/[^A-Za-z0-9_]/g, "_");
  if (/^[0-9]/.test(name)) name = "_" + name;
  if (letterCase === "upper") return name.toUpperCase();
  if (letterCase === "lower") return name.toLowerCase();
  return name;
}

export const transformer = {
  // input: [{key: string, value: Uint8Array}], config: string
  transform(input, config) {
    const { prefix, rename, drop, letterCase } = parseConfig(config);
    const out = [];
    const from = new Map(); // resulting name -> original key
    for (const { key, value } of input) {
      if (drop.has(key)) continue;
      const name = prefix + (rename.has(key) ? rename.get(key) : envName(key, letterCase));
      if (from.has(name)) {
        fail(`keys ${JSON.stringify(from.get(name))} and ${JSON.stringify(key)} both become ${name}`, name);
      }
      from.set(name, key);
      out.push({ key: name, value });
    }
    return out;
  },
};

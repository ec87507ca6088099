// Strict JSON for protocol messages: what JSON.parse accepts minus numbers that overflow (1e400 would
// become Infinity) and nesting deeper than a bound (nextauth_core/jsonlimits.py).

/**
 * @param {unknown} value
 * @param {number} maxDepth
 * @param {number} depth
 */
function check(value, maxDepth, depth) {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new SyntaxError('number out of range');
  } else if (value !== null && typeof value === 'object') {
    if (depth >= maxDepth) throw new SyntaxError('nested too deeply');
    for (const item of Object.values(value)) check(item, maxDepth, depth + 1);
  }
}

/**
 * @param {string} text
 * @param {number} [maxDepth]
 * @returns {any}
 */
export function strictParse(text, maxDepth = 16) {
  const value = JSON.parse(text);
  check(value, maxDepth, 0);
  return value;
}

/**
 * Deep equality of parsed JSON values (the content ns shows against the bytes it asks to sign).
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
export function jsonEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) => Object.hasOwn(b, k) && jsonEqual(/** @type {any} */ (a)[k], /** @type {any} */ (b)[k]),
  );
}

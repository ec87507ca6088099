/**
 * @param {string} text
 * @param {number} [maxDepth]
 * @returns {any}
 */
export function strictParse(text: string, maxDepth?: number): any;
/**
 * Deep equality of parsed JSON values (the content ns shows against the bytes it asks to sign).
 * @param {unknown} a
 * @param {unknown} b
 * @returns {boolean}
 */
export function jsonEqual(a: unknown, b: unknown): boolean;

// The visual hash of an ns server key (docs/app-protocol.md, "Visual hash", version 1): a 5x5 mirrored
// grid in one colour and three words. The enrolment page shows it too; the app draws it from the key the
// server proved in the sigmai handshake, so the person sees that page and phone speak of the same server.
// A check for eyes, not a security boundary: the SDK already pins the key's hash from the QR code.
// tests/test_web_authenticator.py holds this module to docs/visual-hash-vectors.json.

import { sha256 } from './vendor/noble/hashes/sha2.js';

const LABEL = new TextEncoder().encode('nextAuth visual hash v1\u0000');
const SIZE = 5;
const PALETTE = [
  ['black', '#1a1a1a'], ['blue', '#1f5fbf'], ['orange', '#e07000'], ['green', '#1e8a3c'],
  ['purple', '#7b3fa8'], ['red', '#c0262d'], ['teal', '#00838f'], ['brown', '#7a4a1e'],
];
const WORDS = [
  'anchor', 'apple', 'arrow', 'badge', 'basket', 'bell', 'bridge', 'button',
  'cactus', 'camel', 'candle', 'castle', 'cherry', 'cloud', 'comet', 'crown',
  'daisy', 'desert', 'dolphin', 'drum', 'eagle', 'engine', 'feather', 'forest',
  'garden', 'giraffe', 'guitar', 'hammer', 'harbor', 'helmet', 'island', 'jacket',
  'kettle', 'ladder', 'lemon', 'lizard', 'magnet', 'meadow', 'mirror', 'monkey',
  'needle', 'ocean', 'orchid', 'otter', 'pepper', 'piano', 'pillow', 'planet',
  'pocket', 'rabbit', 'ribbon', 'rocket', 'saddle', 'salmon', 'shovel', 'spider',
  'teapot', 'tiger', 'tomato', 'tunnel', 'violin', 'walnut', 'window', 'zebra',
];

function fromHex(hex) {
  if (!/^(?:[0-9a-f]{2})*$/i.test(hex)) throw new TypeError('not hex');
  return Uint8Array.from(hex.match(/../g) || [], (pair) => parseInt(pair, 16));
}

/** The plain form, as the Python SDK gives it: {version, digest, grid, colour, colour_hex, words}. */
export function visualHash(publicKeyHex) {
  const key = fromHex(publicKeyHex);
  if (key.length !== 32) throw new TypeError('an Ed25519 public key is 32 bytes');
  const input = new Uint8Array(LABEL.length + key.length);
  input.set(LABEL);
  input.set(key, LABEL.length);
  const digest = sha256(input);
  const bits = digest[0] * 256 + digest[1];
  const grid = [];
  for (let row = 0; row < SIZE; row += 1) {
    const left = [0, 1, 2].map((col) => ((bits >> (3 * row + col)) & 1) === 1);
    grid.push([...left, left[1], left[0]].map((filled) => (filled ? '#' : '.')).join(''));
  }
  const [colour, colourHex] = PALETTE[digest[2] % 8];
  return {
    version: 1,
    digest: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''),
    grid,
    colour,
    colour_hex: colourHex,
    words: [0, 1, 2].map((i) => WORDS[digest[3 + i] % 64]),
  };
}

/** Draws it into `figure` as the enrolment page does (built from elements, nothing the CSP would refuse). */
export function drawVisualHash(figure, shown) {
  const ns = 'http://www.w3.org/2000/svg';
  const cell = 24;
  const side = cell * (SIZE + 1);
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${side} ${side}`);
  svg.setAttribute('width', String(side));
  svg.setAttribute('height', String(side));
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `Visual hash of the server's key: ${shown.colour}, ${shown.words.join(' ')}`);
  const ground = document.createElementNS(ns, 'rect');
  ground.setAttribute('width', String(side));
  ground.setAttribute('height', String(side));
  ground.setAttribute('fill', '#f4f4f4');
  const squares = document.createElementNS(ns, 'g');
  squares.setAttribute('fill', shown.colour_hex);
  shown.grid.forEach((row, r) => {
    [...row].forEach((mark, c) => {
      if (mark !== '#') return;
      const rect = document.createElementNS(ns, 'rect');
      rect.setAttribute('x', String(cell / 2 + c * cell));
      rect.setAttribute('y', String(cell / 2 + r * cell));
      rect.setAttribute('width', String(cell));
      rect.setAttribute('height', String(cell));
      squares.append(rect);
    });
  });
  svg.append(ground, squares);
  const caption = document.createElement('figcaption');
  caption.textContent = `${shown.colour}: ${shown.words.join(' ')}`;
  figure.replaceChildren(svg, caption);
}

// Byte-level helpers of SentencePiece: its UTF-8 rules (string_util) and the byte tries that hold
// pieces and user-defined symbols. Everything works on UTF-8 bytes, like the original.

export const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581 '▁'
export const REPLACEMENT_CHAR = Uint8Array.of(0xef, 0xbf, 0xbd); // U+FFFD
export const EMPTY = new Uint8Array(0);

/** Byte length of the character a lead byte starts, by its high nibble (string_util::OneCharLen). */
export function oneCharLen(lead: number): number {
  return lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

function isTrail(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80;
}

/**
 * Length of the well-formed character at `pos` (string_util::IsValidDecodeUTF8), or 0 when the bytes
 * there are malformed: overlong forms, surrogates and code points past U+10FFFF are rejected.
 */
export function validCharLength(bytes: Uint8Array, pos: number, end: number): number {
  const c0 = bytes[pos]!;
  if (c0 < 0x80) return 1;
  const left = end - pos;
  const c1 = bytes[pos + 1];
  const c2 = bytes[pos + 2];
  const c3 = bytes[pos + 3];
  if (left >= 2 && (c0 & 0xe0) === 0xc0) {
    const cp = ((c0 & 0x1f) << 6) | (c1! & 0x3f);
    return isTrail(c1) && cp >= 0x80 ? 2 : 0;
  }
  if (left >= 3 && (c0 & 0xf0) === 0xe0) {
    const cp = ((c0 & 0x0f) << 12) | ((c1! & 0x3f) << 6) | (c2! & 0x3f);
    return isTrail(c1) && isTrail(c2) && cp >= 0x800 && (cp < 0xd800 || cp >= 0xe000) ? 3 : 0;
  }
  if (left >= 4 && (c0 & 0xf8) === 0xf0) {
    const cp = ((c0 & 0x07) << 18) | ((c1! & 0x3f) << 12) | ((c2! & 0x3f) << 6) | (c3! & 0x3f);
    return isTrail(c1) && isTrail(c2) && isTrail(c3) && cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
  }
  return 0;
}

export function bytePiece(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** "<0xAB>" -> 0xAB; anything else (including lower-case hex) -> -1, as PieceToByte. */
export function pieceToByte(piece: string): number {
  return /^<0x[0-9A-F]{2}>$/.test(piece) ? parseInt(piece.slice(3, 5), 16) : -1;
}

// Byte tries (pieces, user-defined symbols). Edges live in one Map keyed by node * 256 + byte.

export interface ByteTrie {
  edges: Map<number, number>;
  /** Per node: the stored value, or -1. */
  values: number[];
}

export function newTrie(): ByteTrie {
  return { edges: new Map(), values: [-1] };
}

export function trieInsert(trie: ByteTrie, key: Uint8Array, value: number): void {
  let node = 0;
  for (const byte of key) {
    const edge = node * 256 + byte;
    let child = trie.edges.get(edge);
    if (child === undefined) {
      child = trie.values.length;
      trie.values.push(-1);
      trie.edges.set(edge, child);
    }
    node = child;
  }
  trie.values[node] = value;
}

/** Exact lookup of bytes[start, end); -1 when absent. */
export function trieGet(trie: ByteTrie, bytes: Uint8Array, start: number, end: number): number {
  let node = 0;
  for (let i = start; i < end; i++) {
    const child = trie.edges.get(node * 256 + bytes[i]!);
    if (child === undefined) return -1;
    node = child;
  }
  return trie.values[node]!;
}

/** Length of the longest key that prefixes bytes[start, end); 0 when none. */
export function trieLongestPrefix(trie: ByteTrie, bytes: Uint8Array, start: number, end: number): number {
  let node = 0;
  let longest = 0;
  for (let i = start; i < end; i++) {
    const child = trie.edges.get(node * 256 + bytes[i]!);
    if (child === undefined) break;
    node = child;
    if (trie.values[node]! >= 0) longest = i - start + 1;
  }
  return longest;
}

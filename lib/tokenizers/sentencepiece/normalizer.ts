// The SentencePiece normalizer (normalizer.cc): the precompiled charsmap (a Darts-clone double
// array of rewrite rules), then the whitespace rules (trim, collapse, escape as '▁', dummy prefix).
import { StepVideoError } from '../../errors.js';
import { type ByteTrie, EMPTY, REPLACEMENT_CHAR, SPACE_SYMBOL, trieLongestPrefix, validCharLength } from './bytes.js';
import type { NormalizerSpec } from './model-proto.js';

export interface Normalizer {
  spec: NormalizerSpec;
  /** Darts-clone double-array units of the charsmap, or null for the identity normalizer. */
  units: Uint32Array | null;
  /** NUL-terminated replacement strings that trie values point into. */
  strings: Uint8Array;
  /** Replacement string end (exclusive) per start offset, filled lazily. */
  stringEnds: Map<number, number>;
  treatWhitespaceAsSuffix: boolean;
  /** User-defined symbols pass through normalization untouched. */
  matcher: ByteTrie | null;
  file: string | undefined;
}

export function tokenizerError(what: string, file: string | undefined): StepVideoError {
  return new StepVideoError('ERR_TOKENIZER', what, file !== undefined ? { file } : {});
}

export function compileNormalizer(spec: NormalizerSpec, treatWhitespaceAsSuffix: boolean, matcher: ByteTrie | null, file: string | undefined): Normalizer {
  const normalizer: Normalizer = { spec, units: null, strings: EMPTY, stringEnds: new Map(), treatWhitespaceAsSuffix, matcher, file };
  const blob = spec.precompiledCharsmap;
  if (blob.length === 0) return normalizer;
  if (blob.length <= 4) throw tokenizerError('precompiled charsmap is broken: shorter than its 4-byte header', file);
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieSize = view.getUint32(0, true);
  if (trieSize >= blob.length) {
    throw tokenizerError(`precompiled charsmap is broken: trie size ${trieSize} exceeds the blob (${blob.length} bytes)`, file);
  }
  // The blob sits at an arbitrary offset in the file, so the units are copied out, not aliased.
  const units = new Uint32Array(Math.floor(trieSize / 4));
  for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
  if (units.length === 0) throw tokenizerError('precompiled charsmap is broken: empty double array', file);
  normalizer.units = units;
  normalizer.strings = blob.subarray(4 + trieSize);
  return normalizer;
}

function unitAt(n: Normalizer, index: number): number {
  const unit = n.units![index];
  if (unit === undefined) throw tokenizerError(`precompiled charsmap is corrupt: trie index ${index} out of range`, n.file);
  return unit;
}

// Darts-clone unit layout: bit 8 = has leaf, bits 0-7 (+ bit 31 for leaves) = label, bits 10-31
// (times 256 when bit 9 is set) = offset to children; a leaf unit's low 31 bits are its value.
const unitOffset = (unit: number): number => (unit >>> 10) << ((unit & 0x200) >>> 6);
const unitLabel = (unit: number): number => (unit & 0x800000ff) >>> 0;
const unitHasLeaf = (unit: number): boolean => ((unit >>> 8) & 1) === 1;

interface Prefix {
  /** Where the normalized bytes of this prefix live. */
  src: Uint8Array;
  start: number;
  length: number;
  /** Input bytes consumed. */
  consumed: number;
}

/** Normalizer::NormalizePrefix: the longest charsmap rule at `pos`, else one character as is. */
function normalizePrefix(n: Normalizer, input: Uint8Array, pos: number): Prefix {
  if (n.matcher !== null) {
    const length = trieLongestPrefix(n.matcher, input, pos, input.length);
    if (length > 0) return { src: input, start: pos, length, consumed: length };
  }
  if (n.units !== null) {
    // commonPrefixSearch, keeping the longest hit.
    let node = unitOffset(unitAt(n, 0));
    let matched = 0;
    let value = 0;
    for (let i = pos; i < input.length; i++) {
      const byte = input[i]!;
      node ^= byte;
      const unit = unitAt(n, node);
      if (unitLabel(unit) !== byte) break;
      node ^= unitOffset(unit);
      if (unitHasLeaf(unit)) {
        matched = i - pos + 1;
        value = unitAt(n, node) & 0x7fffffff;
      }
    }
    if (matched > 0) {
      let end = n.stringEnds.get(value);
      if (end === undefined) {
        if (value >= n.strings.length) throw tokenizerError(`precompiled charsmap is corrupt: string offset ${value} out of range`, n.file);
        end = n.strings.indexOf(0, value);
        if (end < 0) throw tokenizerError('precompiled charsmap is corrupt: replacement string is not NUL-terminated', n.file);
        n.stringEnds.set(value, end);
      }
      return { src: n.strings, start: value, length: end - value, consumed: matched };
    }
  }
  const length = validCharLength(input, pos, input.length);
  // A malformed byte becomes U+FFFD and is consumed alone.
  if (length === 0) return { src: REPLACEMENT_CHAR, start: 0, length: 3, consumed: 1 };
  return { src: input, start: pos, length, consumed: length };
}

function endsWith(out: number[], suffix: readonly number[]): boolean {
  if (out.length < suffix.length) return false;
  for (let i = 0; i < suffix.length; i++) if (out[out.length - suffix.length + i] !== suffix[i]) return false;
  return true;
}

/** Normalizer::Normalize: charsmap rules, then whitespace trimming/collapsing/escaping. */
export function normalizeBytes(n: Normalizer, input: Uint8Array): Uint8Array {
  const spec = n.spec;
  let pos = 0;
  if (spec.removeExtraWhitespaces) {
    while (pos < input.length) {
      const p = normalizePrefix(n, input, pos);
      if (p.length !== 1 || p.src[p.start] !== 0x20) break;
      pos += p.consumed;
    }
  }
  if (pos >= input.length) return EMPTY;

  const space = spec.escapeWhitespaces ? SPACE_SYMBOL : [0x20];
  const out: number[] = [];
  if (!n.treatWhitespaceAsSuffix && spec.addDummyPrefix) out.push(...space);

  let isPrevSpace = spec.removeExtraWhitespaces;
  while (pos < input.length) {
    const p = normalizePrefix(n, input, pos);
    let start = p.start;
    const end = p.start + p.length;
    // Collapse runs: drop the leading spaces of this piece when the previous one ended in space.
    if (isPrevSpace) while (start < end && p.src[start] === 0x20) start++;
    if (start < end) {
      for (let k = start; k < end; k++) {
        const byte = p.src[k]!;
        if (byte === 0x20 && spec.escapeWhitespaces) out.push(...SPACE_SYMBOL);
        else out.push(byte);
      }
      isPrevSpace = p.src[end - 1] === 0x20;
    }
    pos += p.consumed;
    if (!spec.removeExtraWhitespaces) isPrevSpace = false;
  }

  if (spec.removeExtraWhitespaces) {
    while (endsWith(out, space)) out.length -= space.length;
  }
  if (n.treatWhitespaceAsSuffix && spec.addDummyPrefix) out.push(...space);
  return Uint8Array.from(out);
}

// Unigram segmentation (unigram_model.cc): the best-scoring path through the lattice of pieces.
import { StepVideoError } from '../../errors.js';
import { oneCharLen } from './bytes.js';
import { PieceType } from './model-proto.js';
import type { ModelTables, Span } from './vocab.js';

const UNK_PENALTY = 10;

/**
 * unigram::Model::EncodeOptimized: Viterbi over byte positions keeping, for every position, the best
 * path that ends there. Scores are float32 like the original, so ties break identically.
 */
export function encodeUnigram(m: ModelTables, text: Uint8Array): Span[] {
  const size = text.length;
  if (size === 0) return [];
  const score = new Float64Array(size + 1);
  const startsAt = new Int32Array(size + 1).fill(-1);
  const ids = new Int32Array(size + 1).fill(-1);
  const unkScore = Math.fround(m.minScore - UNK_PENALTY);

  let begin = 0;
  while (begin < size) {
    const here = score[begin]!;
    const charLen = Math.min(oneCharLen(text[begin]!), size - begin);
    let hasSingleChar = false;
    let node = 0;
    for (let end = begin + 1; end <= size; end++) {
      const child = m.vocab.edges.get(node * 256 + text[end - 1]!);
      if (child === undefined) break;
      node = child;
      const id = m.vocab.values[node]!;
      if (id < 0) continue;
      const piece = m.pieces[id]!;
      if (piece.type === PieceType.Unused) continue;
      const length = end - begin;
      // C++ types this sum as double (the ?: below mixes float and double), so the comparison is
      // made before rounding to float. User-defined symbols get a bonus so they always win.
      const candidate = (piece.type === PieceType.UserDefined ? Math.fround(length * m.maxScore) - 0.1 : piece.score) + here;
      if (startsAt[end] === -1 || candidate > score[end]!) {
        score[end] = Math.fround(candidate);
        startsAt[end] = begin;
        ids[end] = id;
      }
      if (length === charLen) hasSingleChar = true;
    }
    if (!hasSingleChar) {
      const end = begin + charLen;
      const candidate = Math.fround(unkScore + here);
      if (startsAt[end] === -1 || candidate > score[end]!) {
        score[end] = candidate;
        startsAt[end] = begin;
        ids[end] = m.unkId;
      }
    }
    begin += charLen;
  }

  const spans: Span[] = [];
  for (let end = size; end > 0; ) {
    const start = startsAt[end]!;
    if (start < 0) throw new StepVideoError('ERR_INTERNAL', `unigram lattice has no path to byte ${end}`);
    spans.push({ start, end, id: ids[end]! });
    end = start;
  }
  return spans.reverse();
}

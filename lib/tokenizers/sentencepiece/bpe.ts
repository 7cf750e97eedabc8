// BPE segmentation (bpe_model.cc): greedy merges of the best-scoring adjacent pair.
import { oneCharLen, trieGet, trieLongestPrefix } from './bytes.js';
import { PieceType } from './model-proto.js';
import { type ModelTables, type Span, idOfBytes } from './vocab.js';

interface MergeCandidate {
  left: number;
  right: number;
  score: number;
  size: number;
}

// Max-heap order of bpe::Model's agenda: higher score first, then the leftmost pair.
function outranks(a: MergeCandidate, b: MergeCandidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

function heapPush(heap: MergeCandidate[], item: MergeCandidate): void {
  let i = heap.length;
  heap.push(item);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!outranks(item, heap[parent]!)) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = item;
}

function heapPop(heap: MergeCandidate[]): MergeCandidate {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= heap.length) break;
      const r = l + 1;
      const child = r < heap.length && outranks(heap[r]!, heap[l]!) ? r : l;
      if (!outranks(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }
  return top;
}

/**
 * bpe::Model::Encode: start from characters (user-defined symbols as frozen wholes), repeatedly
 * merge the adjacent pair that forms the best-scoring vocabulary piece, then split UNUSED pieces
 * back into the pieces they were merged from.
 */
export function encodeBpe(m: ModelTables, text: Uint8Array): Span[] {
  const size = text.length;
  if (size === 0) return [];
  const start: number[] = [];
  const len: number[] = [];
  const frozen: boolean[] = [];
  for (let pos = 0; pos < size; ) {
    const user = m.userSymbols !== null ? trieLongestPrefix(m.userSymbols, text, pos, size) : 0;
    const length = user > 0 ? user : Math.min(oneCharLen(text[pos]!), size - pos);
    start.push(pos);
    len.push(length);
    frozen.push(user > 0);
    pos += length;
  }
  const count = start.length;
  const prev = Array.from({ length: count }, (_, i) => i - 1);
  const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));

  // Unused pieces are still merged through, remembering what they were made of.
  const unmerge = new Map<number, [leftStart: number, leftLen: number, rightStart: number, rightLen: number]>();
  const agenda: MergeCandidate[] = [];
  const consider = (left: number, right: number): void => {
    if (left < 0 || right < 0 || frozen[left] || frozen[right]) return;
    const size = len[left]! + len[right]!;
    const id = trieGet(m.vocab, text, start[left]!, start[left]! + size);
    if (id < 0) return;
    heapPush(agenda, { left, right, score: m.pieces[id]!.score, size });
    if (m.pieces[id]!.type === PieceType.Unused) unmerge.set(id, [start[left]!, len[left]!, start[right]!, len[right]!]);
  };
  for (let i = 1; i < count; i++) consider(i - 1, i);

  while (agenda.length > 0) {
    const top = heapPop(agenda);
    const { left, right } = top;
    // Stale: one side was merged away or grew since this pair was queued.
    if (len[left] === 0 || len[right] === 0 || len[left]! + len[right]! !== top.size) continue;
    len[left] = top.size;
    next[left] = next[right]!;
    if (next[right]! >= 0) prev[next[right]!] = left;
    len[right] = 0;
    consider(prev[left]!, left);
    consider(left, next[left]!);
  }

  const spans: Span[] = [];
  const resegment = (s: number, l: number): void => {
    const id = idOfBytes(m, text, s, s + l);
    const parts = m.pieces[id]!.type === PieceType.Unused ? unmerge.get(id) : undefined;
    if (parts === undefined) {
      spans.push({ start: s, end: s + l, id });
      return;
    }
    resegment(parts[0], parts[1]);
    resegment(parts[2], parts[3]);
  };
  for (let i = 0; i !== -1; i = next[i]!) resegment(start[i]!, len[i]!);
  return spans;
}

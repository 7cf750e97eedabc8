// The vocabulary tables both segmentation algorithms work on, and what they return.
import { type ByteTrie, trieGet } from './bytes.js';
import type { SentencePieceEntry } from './model-proto.js';

/** One encoded piece: normalized bytes [start, end) and its id. */
export interface Span {
  start: number;
  end: number;
  id: number;
}

export interface ModelTables {
  pieces: SentencePieceEntry[];
  /** NORMAL, USER_DEFINED and UNUSED pieces: what text can be segmented into. */
  vocab: ByteTrie;
  /** UNKNOWN, CONTROL and BYTE pieces: looked up first by PieceToId, never matched in text. */
  reserved: ByteTrie;
  /** User-defined symbols, or null when there are none. */
  userSymbols: ByteTrie | null;
  unkId: number;
  minScore: number;
  maxScore: number;
}

/** ModelInterface::PieceToId on bytes: reserved pieces first, then the vocabulary, else <unk>. */
export function idOfBytes(m: ModelTables, bytes: Uint8Array, start: number, end: number): number {
  const reserved = trieGet(m.reserved, bytes, start, end);
  if (reserved >= 0) return reserved;
  const id = trieGet(m.vocab, bytes, start, end);
  return id >= 0 ? id : m.unkId;
}

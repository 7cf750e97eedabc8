// The WordPiece vocabulary of the built-in test model's CLIP tokenizer (vocab.txt, one token per
// line, id = line number): BERT's special tokens, punctuation, digits, letters with their "##"
// continuations, a few whole words, and the CJK characters of the official prompt magic (BERT
// splits CJK text into single characters).
import { NEG_MAGIC, POS_MAGIC } from '../../sampler/scheduler.js';

const WORDS = `the a an of and in on with at to is are video camera scene light sky sea city street
man woman dog cat bird car tree flower water fire snow rain sun night day red blue green white black`;

export function buildWordPieceVocab(): string[] {
  const tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  for (const c of '.,;:!?-\'"()[]/&%$#@*+=<>_~`^|\\{}、。，：；！？') tokens.push(c);
  for (let d = 0; d <= 9; d++) tokens.push(String(d));
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (const c of letters) tokens.push(c);
  for (const c of letters) tokens.push(`##${c}`);
  for (let d = 0; d <= 9; d++) tokens.push(`##${d}`);
  for (const word of WORDS.split(/\s+/)) if (word && !tokens.includes(word)) tokens.push(word);
  const cjk = new Set<string>();
  for (const c of POS_MAGIC + NEG_MAGIC) if (/\p{Script=Han}/u.test(c)) cjk.add(c);
  tokens.push(...[...cjk].sort());
  return tokens;
}

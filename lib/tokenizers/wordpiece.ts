// Hugging Face BertTokenizer (the slow, Python one) for the Hunyuan-CLIP text tower:
//   split out special tokens -> BasicTokenizer (clean, CJK split, NFC, lower + strip accents,
//   punctuation split) -> greedy longest-match WordPiece -> [CLS] tokens [SEP], truncated and
//   padded to maxLength.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { StepVideoError, asStepVideoError } from '../errors.js';
import { CLIP_TOKENS } from './caption-lengths.js';

export interface BertTokenizerConfig {
  doLowerCase: boolean;
  doBasicTokenize: boolean;
  tokenizeChineseChars: boolean;
  /** null = follow doLowerCase (HF's None). */
  stripAccents: boolean | null;
  doSplitOnPunc: boolean;
  neverSplit: string[];
  modelMaxLength: number;
  unkToken: string;
  sepToken: string;
  padToken: string;
  clsToken: string;
  maskToken: string;
  maxInputCharsPerWord: number;
}

export const DEFAULT_BERT_CONFIG: Readonly<BertTokenizerConfig> = Object.freeze({
  doLowerCase: true,
  doBasicTokenize: true,
  tokenizeChineseChars: true,
  stripAccents: null,
  doSplitOnPunc: true,
  neverSplit: [],
  modelMaxLength: 512,
  unkToken: '[UNK]',
  sepToken: '[SEP]',
  padToken: '[PAD]',
  clsToken: '[CLS]',
  maskToken: '[MASK]',
  maxInputCharsPerWord: 100,
});

export interface BertBatch {
  inputIds: number[][];
  attentionMask: number[][];
}

// Characters Python's str.split() treats as whitespace (str.isspace).
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;
const PUNCTUATION = /^\p{P}$/u;
const NONSPACING_MARK = /^\p{Mn}$/u;

function whitespaceSplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((token) => token.length > 0);
}

// HF counts \t \n \r as whitespace, not control.
function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEPARATOR.test(ch);
}

function isControl(ch: string): boolean {
  return ch !== '\t' && ch !== '\n' && ch !== '\r' && CONTROL.test(ch);
}

// HF: every non-alphanumeric ASCII character counts, whatever its Unicode category ($, ^, ` ...).
function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) return true;
  return PUNCTUATION.test(ch);
}

// The CJK Unified Ideographs blocks, exactly as HF lists them (no kana, hangul or CJK punctuation).
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export class BertTokenizer {
  readonly config: Readonly<BertTokenizerConfig>;
  readonly file: string | undefined;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  private readonly vocab: Map<string, number>;
  private readonly idToToken: Map<number, string>;
  private readonly specialTokens: string[];
  private readonly neverSplit: Set<string>;

  /**
   * `vocabLines` are the lines of vocab.txt; a token's id is its line number, and a repeated token
   * keeps its last line (as HF's dict does). `file` labels errors.
   */
  constructor(vocabLines: readonly string[], config: Partial<BertTokenizerConfig> = {}, file?: string) {
    this.file = file;
    this.config = Object.freeze({ ...DEFAULT_BERT_CONFIG, ...config });
    this.vocab = new Map();
    vocabLines.forEach((token, id) => this.vocab.set(token, id));
    this.idToToken = new Map([...this.vocab].map(([token, id]) => [id, token]));
    const c = this.config;
    const idOf = (token: string, role: string): number => {
      const id = this.vocab.get(token);
      if (id === undefined) throw new StepVideoError('ERR_TOKENIZER', `vocabulary lacks the ${role} token '${token}'`, this.where());
      return id;
    };
    this.unkId = idOf(c.unkToken, 'unknown');
    this.clsId = idOf(c.clsToken, 'classifier');
    this.sepId = idOf(c.sepToken, 'separator');
    this.padId = idOf(c.padToken, 'padding');
    this.specialTokens = [c.unkToken, c.sepToken, c.padToken, c.clsToken, c.maskToken];
    this.neverSplit = new Set([...c.neverSplit, ...this.specialTokens]);
  }

  /**
   * Loads from a tokenizer folder (vocab.txt + optional tokenizer_config.json) or from a vocab.txt
   * path (its folder's tokenizer_config.json is used when present).
   */
  static fromPath(location: string): BertTokenizer {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(location).isDirectory();
    } catch (error) {
      throw asStepVideoError(error, 'ERR_IO', 'cannot read BERT tokenizer', { file: location });
    }
    const folder = isDirectory ? location : path.dirname(location);
    const vocabFile = isDirectory ? path.join(location, 'vocab.txt') : location;
    const configFile = path.join(folder, 'tokenizer_config.json');
    const config = existsSync(configFile) ? parseBertConfig(readText(configFile), configFile) : {};
    // Python's text mode turns \r\n and \r into \n; each line keeps everything but its newline.
    const lines = readText(vocabFile).split(/\r\n|\r|\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return new BertTokenizer(lines, config, vocabFile);
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  tokenToId(token: string): number {
    return this.vocab.get(token) ?? this.unkId;
  }

  idToTokenOf(id: number): string | undefined {
    return this.idToToken.get(id);
  }

  convertTokensToIds(tokens: readonly string[]): number[] {
    return tokens.map((token) => this.tokenToId(token));
  }

  /** `tokenizer.tokenize(text)`: special tokens stay whole, everything else goes through BERT rules. */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new StepVideoError('ERR_ARGUMENT', 'text to tokenize must be a string', { got: typeof text });
    const tokens: string[] = [];
    for (const chunk of this.splitOnSpecialTokens(text)) {
      if (chunk.special) tokens.push(chunk.text);
      else if (chunk.text.length > 0) tokens.push(...this.tokenizeChunk(chunk.text));
    }
    return tokens;
  }

  /** `tokenizer(texts, max_length, padding='max_length', truncation=True)`. */
  encode(texts: readonly string[], maxLength = CLIP_TOKENS): BertBatch {
    if (!Array.isArray(texts)) throw new StepVideoError('ERR_ARGUMENT', 'texts must be an array of strings', { got: typeof texts });
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new StepVideoError('ERR_ARGUMENT', 'maxLength must leave room for [CLS] and [SEP]', { expected: 'an integer >= 2', got: maxLength });
    }
    const batch: BertBatch = { inputIds: [], attentionMask: [] };
    for (const text of texts) {
      const ids = this.convertTokensToIds(this.tokenize(text)).slice(0, maxLength - 2);
      const row = [this.clsId, ...ids, this.sepId];
      const valid = row.length;
      batch.inputIds.push(row.concat(new Array<number>(maxLength - valid).fill(this.padId)));
      batch.attentionMask.push(new Array<number>(maxLength).fill(0).fill(1, 0, valid));
    }
    return batch;
  }

  // PreTrainedTokenizer.tokenize cuts the text at every occurrence of a special token first.
  private splitOnSpecialTokens(text: string): Array<{ text: string; special: boolean }> {
    const chunks: Array<{ text: string; special: boolean }> = [];
    let from = 0;
    let i = 0;
    while (i < text.length) {
      let match = '';
      for (const token of this.specialTokens) {
        if (token.length > match.length && text.startsWith(token, i)) match = token;
      }
      if (match === '') {
        i++;
        continue;
      }
      chunks.push({ text: text.slice(from, i), special: false }, { text: match, special: true });
      i += match.length;
      from = i;
    }
    chunks.push({ text: text.slice(from), special: false });
    return chunks;
  }

  private tokenizeChunk(text: string): string[] {
    if (!this.config.doBasicTokenize) return this.wordPiece(text);
    const out: string[] = [];
    for (const token of this.basicTokenize(text)) {
      if (this.neverSplit.has(token)) out.push(token);
      else out.push(...this.wordPiece(token));
    }
    return out;
  }

  private basicTokenize(text: string): string[] {
    const c = this.config;
    let cleaned = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
      if (isWhitespace(ch)) cleaned += ' ';
      else if (c.tokenizeChineseChars && isChineseChar(cp)) cleaned += ` ${ch} `;
      else cleaned += ch;
    }
    const split: string[] = [];
    for (let token of whitespaceSplit(cleaned.normalize('NFC'))) {
      if (!this.neverSplit.has(token)) {
        if (c.doLowerCase) token = token.toLowerCase();
        if (c.stripAccents === true || (c.stripAccents === null && c.doLowerCase)) token = stripAccents(token);
      }
      split.push(...this.splitOnPunctuation(token));
    }
    return whitespaceSplit(split.join(' '));
  }

  private splitOnPunctuation(token: string): string[] {
    if (!this.config.doSplitOnPunc || this.neverSplit.has(token)) return [token];
    const words: string[] = [];
    let current: string | null = null;
    for (const ch of token) {
      if (isPunctuation(ch)) {
        if (current !== null) words.push(current);
        words.push(ch);
        current = null;
      } else {
        current = (current ?? '') + ch;
      }
    }
    if (current !== null) words.push(current);
    return words;
  }

  private wordPiece(text: string): string[] {
    const out: string[] = [];
    for (const word of whitespaceSplit(text)) {
      const chars = Array.from(word); // code points, as Python's list(str)
      if (chars.length > this.config.maxInputCharsPerWord) {
        out.push(this.config.unkToken);
        continue;
      }
      const pieces: string[] = [];
      let start = 0;
      while (start < chars.length) {
        let end = chars.length;
        let found: string | null = null;
        while (start < end) {
          const piece = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
          if (this.vocab.has(piece)) {
            found = piece;
            break;
          }
          end--;
        }
        if (found === null) break;
        pieces.push(found);
        start = end;
      }
      // One unmatchable stretch makes the whole word [UNK].
      if (start < chars.length) out.push(this.config.unkToken);
      else out.push(...pieces);
    }
    return out;
  }

  private where(): { file?: string } {
    return this.file !== undefined ? { file: this.file } : {};
  }
}

function stripAccents(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFD')) if (!NONSPACING_MARK.test(ch)) out += ch;
  return out;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot read BERT tokenizer file', { file });
  }
}

/** Reads the keys of an HF tokenizer_config.json that BertTokenizer honours. */
export function parseBertConfig(json: string, file?: string): Partial<BertTokenizerConfig> {
  const where = file !== undefined ? { file } : {};
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_TOKENIZER', 'tokenizer_config.json is not valid JSON', where);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new StepVideoError('ERR_TOKENIZER', 'tokenizer_config.json must hold an object', { ...where, got: raw });
  }
  const obj = raw as Record<string, unknown>;
  const config: Partial<BertTokenizerConfig> = {};
  const bad = (key: string, expected: string): never => {
    throw new StepVideoError('ERR_TOKENIZER', `tokenizer_config.json key '${key}' has the wrong type`, { ...where, expected, got: obj[key] });
  };
  const bool = (key: string): boolean | undefined => {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    return typeof value === 'boolean' ? value : bad(key, 'a boolean');
  };
  // Special tokens are either strings or serialized AddedToken objects ({ "content": ... }).
  const token = (key: string): string | undefined => {
    const value = obj[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return value;
    if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
    return bad(key, 'a string or an object with "content"');
  };
  const set = <K extends keyof BertTokenizerConfig>(key: K, value: BertTokenizerConfig[K] | undefined): void => {
    if (value !== undefined) config[key] = value;
  };

  set('doLowerCase', bool('do_lower_case'));
  set('doBasicTokenize', bool('do_basic_tokenize'));
  set('tokenizeChineseChars', bool('tokenize_chinese_chars'));
  set('doSplitOnPunc', bool('do_split_on_punc'));
  if (obj.strip_accents !== undefined) config.stripAccents = obj.strip_accents === null ? null : (bool('strip_accents') ?? null);
  const neverSplit = obj.never_split;
  if (neverSplit !== undefined && neverSplit !== null) {
    if (!Array.isArray(neverSplit) || !neverSplit.every((t) => typeof t === 'string')) bad('never_split', 'a list of strings');
    config.neverSplit = neverSplit as string[];
  }
  const maxLength = obj.model_max_length;
  if (maxLength !== undefined && maxLength !== null) {
    if (typeof maxLength !== 'number' || !(maxLength > 0)) bad('model_max_length', 'a positive number');
    config.modelMaxLength = maxLength as number;
  }
  set('unkToken', token('unk_token'));
  set('sepToken', token('sep_token'));
  set('padToken', token('pad_token'));
  set('clsToken', token('cls_token'));
  set('maskToken', token('mask_token'));
  return config;
}

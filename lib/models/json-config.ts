// Reading a model's config.json: an unreadable file is ERR_IO; bad JSON, a missing key or a value
// of the wrong kind is ERR_CONFIG naming the file and the key.
import { readFile } from 'node:fs/promises';

import { StepVideoError, asStepVideoError } from '../errors.js';

export class ConfigJson {
  private constructor(
    readonly values: Readonly<Record<string, unknown>>,
    readonly file: string,
  ) {}

  static async read(file: string): Promise<ConfigJson> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw asStepVideoError(error, 'ERR_IO', 'cannot read model config', { file });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new StepVideoError('ERR_CONFIG', 'model config is not valid JSON', { file, got: (error as Error).message });
    }
    return ConfigJson.from(json, file);
  }

  static from(json: unknown, file = 'config.json'): ConfigJson {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new StepVideoError('ERR_CONFIG', 'model config must be a JSON object', { file });
    }
    return new ConfigJson(json as Record<string, unknown>, file);
  }

  has(key: string): boolean {
    return this.values[key] !== undefined && this.values[key] !== null;
  }

  /** A positive integer (or >= `min`). */
  int(key: string, min = 1): number {
    const value = this.#required(key);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw this.#bad(key, `an integer >= ${min}`, value);
    return value;
  }

  /** A finite number > 0. */
  positive(key: string): number {
    const value = this.#required(key);
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw this.#bad(key, 'a positive number', value);
    return value;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const value = this.values[key];
    if (typeof value !== 'boolean') throw this.#bad(key, 'true or false', value);
    return value;
  }

  string(key: string, fallback: string): string {
    if (!this.has(key)) return fallback;
    const value = this.values[key];
    if (typeof value !== 'string') throw this.#bad(key, 'a string', value);
    return value;
  }

  /** ERR_CONFIG about `key` (for checks across keys or against the weights). */
  error(what: string, key: string, details: { expected?: unknown; got?: unknown } = {}): StepVideoError {
    return new StepVideoError('ERR_CONFIG', `${what} (key '${key}')`, { file: this.file, ...details });
  }

  #required(key: string): unknown {
    if (!this.has(key)) throw new StepVideoError('ERR_CONFIG', `model config lacks '${key}'`, { file: this.file });
    return this.values[key];
  }

  #bad(key: string, expected: string, got: unknown): StepVideoError {
    return new StepVideoError('ERR_CONFIG', `model config '${key}' is invalid`, { file: this.file, expected, got });
  }
}

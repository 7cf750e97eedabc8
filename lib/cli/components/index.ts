// The components `stepvideo run` knows, loaded lazily so the CLI starts fast. Each model issue
// adds its component module here.
import type { Component } from '../component.js';

export const componentLoaders: Readonly<Record<string, () => Promise<Component>>> = {
  'step-llm': async () => (await import('./step-llm.js')).default,
  clip: async () => (await import('./clip.js')).default,
  dit: async () => (await import('./dit.js')).default,
  'dpo-loss': async () => (await import('./dpo-loss.js')).default,
  sample: async () => (await import('./sample.js')).default,
  'vae-decode': async () => (await import('./vae-decode.js')).default, 'vae-encode': async () => (await import('./vae-encode.js')).default,
};

export function componentNames(): string[] {
  return Object.keys(componentLoaders);
}

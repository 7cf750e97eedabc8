// The components `stepvideo run` knows, loaded lazily so the CLI starts fast. Each model issue
// adds its component module here.
import type { Component } from '../component.js';

export const componentLoaders: Readonly<Record<string, () => Promise<Component>>> = {
};

export function componentNames(): string[] {
  return Object.keys(componentLoaders);
}

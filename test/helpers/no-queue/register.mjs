// `node --import <this file>`: BullMQ and ioredis cannot be imported in that process, as on an
// install without them. Proves the single-process server never needs them.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);

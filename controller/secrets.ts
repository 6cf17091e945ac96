// A secret the controller keeps in a file of its state directory (a token): read it, or make one
// (32 random bytes, base64url) and store it readable by root only.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './store/store.js';

export function loadOrCreateSecret(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const secret = randomBytes(32).toString('base64url');
  writeFileAtomic(path, secret, 0o600);
  return secret;
}

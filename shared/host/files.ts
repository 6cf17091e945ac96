// Files written so that a reader (another process, or this one after a crash) never sees half of
// one: the controller's store and secrets, the local cluster's state, the agent's CNI configuration.

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes every byte (writeSync may write fewer than asked). */
export function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
}

/** Makes a rename in `dir` durable: the directory entry itself must reach the disk. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file so that a reader sees either the old or the whole new content, never a part. The
 * temporary file beside it ends in `.tmp-<pid>`, a name no reader of a directory by suffix takes
 * (a CNI runtime reads only *.conf, *.conflist and *.json).
 */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

// Logging for the long-running processes (controller, agent): pino, JSON lines, one child logger per
// component with its fields bound. The CLI prints for people and does not use this.

import { pino, type Logger } from 'pino';

export type { Logger };

/** To `destination` (a file) when given, else to the file descriptor `fd` (stderr by default). */
export function createLogger(process: string, level = 'info', destination?: string, fd = 2): Logger {
  const stream = destination ? pino.destination({ dest: destination, append: true, sync: false }) : pino.destination({ dest: fd, sync: false });
  return pino({ level, base: { process }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

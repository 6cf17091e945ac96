// Lines to a stream in few writes: each event-loop turn's lines are joined and handed over as one
// write (sooner once they pass 32 KiB), and none while the stream is still busy with the last (its
// 'drain' resumes them). While it is busy at most `maxWaitingChars` wait (16 MiB by default): lines
// past that are dropped and counted, as Envoy drops access log entries its full buffer cannot take,
// so that a stdout nobody reads cannot grow the proxy without bound. The access log writes through
// it; what the lines say is access-log.ts's.

/** Where the lines go: pino.destination (sonic-boom) in the waypoint, any Writable in tests. */
export interface LineDestination {
  /** False when the stream holds more than it wants: the next write waits for 'drain'. */
  write(chunk: string): boolean;
  end(): unknown;
  once(event: 'drain' | 'finish', listener: () => void): unknown;
}

/** Past this many characters waiting, they go now rather than at the end of the turn. */
const batchChars = 32 * 1024;
const defaultMaxWaitingChars = 16 * 1024 * 1024;

export class LineBuffer {
  private pending = '';
  private scheduled = false;
  /** The stream said it was full; nothing more goes to it until its 'drain'. */
  private blocked = false;
  /** close() ended the stream: a line pushed after it has nowhere to go. */
  private ended = false;
  private closed: Promise<void> | undefined;
  /** Lines dropped because too many were waiting for a busy stream. */
  dropped = 0;
  private readonly onTurn = () => {
    this.scheduled = false;
    this.hand();
  };
  private readonly onDrain = () => {
    this.blocked = false;
    this.hand();
  };

  constructor(
    private readonly destination: LineDestination,
    private readonly maxWaitingChars = defaultMaxWaitingChars,
  ) {}

  /** `line` ends with its newline (several lines may come in one string, each ending with one). */
  push(line: string): void {
    if (this.ended) return;
    if (this.blocked && this.pending.length + line.length > this.maxWaitingChars) {
      this.dropped += countLines(line);
      return;
    }
    this.pending += line;
    if (this.blocked) return;
    if (this.pending.length >= batchChars) this.hand();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.onTurn);
    }
  }

  /** Hands what waits to the stream now, and resolves once the stream has taken it (its 'drain' if it was full). */
  flush(): Promise<void> {
    this.hand(true);
    if (!this.blocked) return Promise.resolve();
    return new Promise((resolve) => this.destination.once('drain', resolve));
  }

  /** Flushes and ends the stream: resolves once every line is written (its 'finish'), for a clean exit. */
  close(): Promise<void> {
    this.hand(true);
    this.ended = true;
    return (this.closed ??= new Promise((resolve) => {
      this.destination.once('finish', resolve);
      this.destination.end();
    }));
  }

  private hand(evenIfBlocked = false): void {
    if (!this.pending || this.ended || (this.blocked && !evenIfBlocked)) return;
    const chunk = this.pending;
    this.pending = '';
    if (this.destination.write(chunk) || this.blocked) return;
    this.blocked = true;
    this.destination.once('drain', this.onDrain);
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

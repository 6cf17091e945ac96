// The browser's side of the dashboard's JSON API: one fetch helper that turns the server's
// { error: { code, message } } into an Error with that message, and a hook that polls an endpoint.
// Shapes of the answers are declared in types.ts.

import { useEffect, useState } from 'preact/hooks';

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError('Unreachable', `the dashboard does not answer (${(err as Error).message}); is the controller running?`);
  }
  const body = (await res.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined;
  if (!res.ok || !body) throw new ApiError(body?.error?.code ?? `HTTP${res.status}`, body?.error?.message ?? `HTTP ${res.status}`);
  return body as T;
}

export const postJson = <T>(path: string, body: unknown) => api<T>(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export interface Polled<T> {
  data?: T;
  error?: ApiError;
  /** When the last answer (or error) came. */
  at?: Date;
}

/** `path` now and every `everyMs`, while the component is shown; the last good data stays on an error. */
export function usePoll<T>(path: string, everyMs: number): Polled<T> {
  const [state, setState] = useState<Polled<T>>({});
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        const data = await api<T>(path);
        if (!stopped) setState({ data, at: new Date() });
      } catch (err) {
        if (!stopped) setState((s) => ({ ...s, error: err as ApiError, at: new Date() }));
      }
      if (!stopped) timer = window.setTimeout(() => void tick(), everyMs);
    };
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [path, everyMs]);
  return state;
}

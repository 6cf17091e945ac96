// Small pieces every page uses: the error banner that repeats the server's own words (they say
// what to do), the "updated at" stamp, and health pills.

import type { ApiError } from '../api.js';

export function ErrorBanner({ error, what }: { error?: ApiError; what: string }) {
  if (!error) return null;
  return (
    <div class="banner" role="alert" data-testid="error">
      Cannot show {what}: <strong>{error.code}</strong>: {error.message}
    </div>
  );
}

export function Updated({ at }: { at?: Date }) {
  return <span class="muted">{at ? `updated ${at.toLocaleTimeString([], { hour12: false })}` : 'loading…'}</span>;
}

export function Pill({ kind, children }: { kind: 'good' | 'warn' | 'bad' | 'info'; children: preact.ComponentChildren }) {
  return <span class={`pill ${kind}`}>{children}</span>;
}

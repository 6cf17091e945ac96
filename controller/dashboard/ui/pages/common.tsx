// Small pieces every page uses: the error banner that repeats the server's own words (they say
// what to do), the "updated at" stamp, health pills and the mTLS padlock.

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

/** A padlock for mutual TLS, drawn here: an emoji depends on fonts the host may not have. */
export function Lock() {
  return (
    <svg class="lock" width="10" height="12" viewBox="0 0 10 12" aria-hidden="true">
      <path d="M2.5 5V3.5a2.5 2.5 0 0 1 5 0V5" fill="none" stroke="currentColor" stroke-width="1.4" />
      <rect x="1" y="5" width="8" height="6.5" rx="1" fill="currentColor" />
    </svg>
  );
}

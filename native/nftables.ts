// nftables from inside the agent through libnftables (the library the `nft` tool is built on),
// run in a chosen network namespace: one transaction costs well under a millisecond, where
// spawning `nft` costs about 20 ms of CPU, which is what enrolling many pods at once pays.
// The netlink socket libnftables opens belongs to the namespace the thread is in, so context
// creation, the command and its release all happen inside inNetns.

import koffi from 'koffi';
import { AmbitError } from '../shared/errors.js';
import { inNetns } from './netns.js';

const lib = koffi.load('libnftables.so.1');
// Declares the opaque struct the signatures below name.
koffi.opaque('nft_ctx');
const nft = {
  ctxNew: lib.func('nft_ctx *nft_ctx_new(uint32_t flags)'),
  ctxFree: lib.func('void nft_ctx_free(nft_ctx *ctx)'),
  bufferOutput: lib.func('int nft_ctx_buffer_output(nft_ctx *ctx)'),
  bufferError: lib.func('int nft_ctx_buffer_error(nft_ctx *ctx)'),
  outputBuffer: lib.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)'),
  errorBuffer: lib.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)'),
  run: lib.func('int nft_run_cmd_from_buffer(nft_ctx *ctx, const char *buf)'),
};
export class NftablesFailed extends AmbitError {
  constructor(detail: string) {
    super('NftablesFailed', `nftables: ${detail}`);
  }
}

/**
 * Runs an nft script (one transaction) in the namespace `nsFd` and returns what it printed.
 * Throws NftablesFailed with nft's own error text; a failed script changes nothing.
 */
export function runNft(nsFd: number, script: string): string {
  return inNetns(nsFd, () => {
    const ctx = nft.ctxNew(0);
    if (!ctx) throw new NftablesFailed('nft_ctx_new failed');
    try {
      nft.bufferOutput(ctx);
      nft.bufferError(ctx);
      const rc = nft.run(ctx, script) as number;
      if (rc !== 0) throw new NftablesFailed(((nft.errorBuffer(ctx) as string) || `exit ${rc}`).trim());
      return (nft.outputBuffer(ctx) as string) ?? '';
    } finally {
      nft.ctxFree(ctx);
    }
  });
}

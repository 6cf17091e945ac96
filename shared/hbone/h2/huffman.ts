// HPACK's Huffman code (RFC 7541 Appendix B) for decoding header strings. The code is canonical
// (within a length, codes rise with the symbol; shorter codes come first), so the table is kept as
// the 257 code lengths of Appendix B and the codes are rebuilt from them. Encoding is not needed:
// ambit's encoder sends strings as raw octets, which every decoder accepts.

import { H2CompressionError } from './errors.js';

/** Code length in bits of each symbol 0-255 and EOS (256), from RFC 7541 Appendix B. */
const codeLengths = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const eos = 256;
const maxLength = 30;
/** Per code length: the first canonical code of that length, how many codes have it, and where its symbols start in `symbols`. */
const firstCode = new Uint32Array(maxLength + 2);
const countOf = new Uint16Array(maxLength + 2);
const offsetOf = new Uint16Array(maxLength + 2);
/** Symbols in canonical order (by length, then value). */
const symbols = new Uint16Array(257);

(() => {
  for (const len of codeLengths) countOf[len]!++;
  let code = 0;
  let offset = 0;
  for (let len = 1; len <= maxLength; len++) {
    firstCode[len] = code;
    offsetOf[len] = offset;
    code = (code + countOf[len]!) << 1;
    offset += countOf[len]!;
  }
  const next = Uint16Array.from(offsetOf);
  for (let sym = 0; sym < codeLengths.length; sym++) symbols[next[codeLengths[sym]!]!++] = sym;
})();

/**
 * Decodes `src[start, end)` into `out` from `at`; returns where the output ends. Throws
 * H2CompressionError on EOS in the data, on padding longer than 7 bits, or on padding that is not
 * the most significant bits of EOS (all ones), as RFC 7541 section 5.2 requires.
 */
export function huffmanDecode(src: Buffer, start: number, end: number, out: Buffer, at: number): number {
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      // A code of this length exists and this prefix is one of them.
      const index = code - firstCode[len]!;
      if (index >= 0 && index < countOf[len]!) {
        const sym = symbols[offsetOf[len]! + index]!;
        if (sym === eos) throw new H2CompressionError('a Huffman-coded header string contains EOS');
        if (at >= out.length) throw new H2CompressionError('a Huffman-coded header string is longer than allowed');
        out[at++] = sym;
        code = 0;
        len = 0;
      } else if (len >= maxLength) {
        throw new H2CompressionError('a Huffman-coded header string holds an invalid code');
      }
    }
  }
  if (len > 7 || code !== (1 << len) - 1) throw new H2CompressionError('a Huffman-coded header string ends in invalid padding');
  return at;
}

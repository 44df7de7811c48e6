/**
 * A bitwise reference CRC for tests, written from the polynomials (the CRC catalogue's
 * CRC-32/ISO-HDLC and CRC-32/ISCSI), not from the code under test.
 */

/** The reflected polynomials: CRC-32 (IEEE 802.3) and CRC-32C (Castagnoli). */
export const IEEE = 0xedb88320;
export const CASTAGNOLI = 0x82f63b78;

/** Reflected CRC-32 of `data` with polynomial `poly` (initial and final XOR 0xFFFFFFFF), a bit at a time. */
export function referenceCrc(data: Uint8Array, poly: number): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

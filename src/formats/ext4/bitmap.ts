/**
 * ext4 block and inode bitmaps: bit i of a group's bitmap is bit (i % 8) of byte i / 8
 * (ext4 disk layout, "Block and inode bitmaps"). Ranges are set and counted a byte at a time
 * where they can be: the writer marks every file's blocks and counts each group's free blocks
 * and inodes once, at the end of a conversion.
 */

/** Sets bits [first, first + count) of the little-endian bitmap `bits`. */
export function setBits(bits: Uint8Array, first: number, count: number): void {
  let b = first;
  const end = first + count;
  for (; b < end && b & 7; b++) bits[b >> 3]! |= 1 << (b & 7);
  if (b + 8 <= end) {
    bits.fill(0xff, b >> 3, end >> 3);
    b = end & ~7;
  }
  for (; b < end; b++) bits[b >> 3]! |= 1 << (b & 7);
}

/** Set bits among [first, first + count) of `bits`. */
export function countBits(bits: Uint8Array, first: number, count: number): number {
  let c = 0;
  let b = first;
  const end = first + count;
  for (; b < end && b & 7; b++) c += (bits[b >> 3]! >> (b & 7)) & 1;
  for (; b + 8 <= end; b += 8) c += BITS_IN_BYTE[bits[b >> 3]!]!;
  for (; b < end; b++) c += (bits[b >> 3]! >> (b & 7)) & 1;
  return c;
}

const BITS_IN_BYTE = Uint8Array.from({ length: 256 }, (_, x) => {
  let c = 0;
  for (let v = x; v !== 0; v >>= 1) c += v & 1;
  return c;
});

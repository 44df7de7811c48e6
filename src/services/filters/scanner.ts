/**
 * Tokenizer of containerd's filter language (containerd filters/scanner.go): fields
 * `[A-Za-z0-9_]+`, separators `,` and `.`, operators built from `=!~`, values (anything
 * graphic up to `,` or space, only right after an operator), and quoted strings delimited
 * by `"`, `/` or `|` with Go escapes. Positions are byte offsets in the UTF-8 input, as
 * containerd reports them.
 */

export const TOKEN = {
  EOF: -1,
  Quoted: -2,
  Value: -3,
  Field: -4,
  Separator: -5,
  Operator: -6,
  Illegal: -7,
} as const;

export interface Token {
  /** byte position of the token's first rune */
  pos: number;
  /** a TOKEN kind, or the code point of an unexpected rune */
  tok: number;
  text: string;
}

const isAlpha = (r: number) => (r >= 0x41 && r <= 0x5a) || (r >= 0x61 && r <= 0x7a);
const isDigit = (r: number) => r >= 0x30 && r <= 0x39;
const isFieldRune = (r: number) => r === 0x5f || isAlpha(r) || isDigit(r);
const isOperatorRune = (r: number) => r === 0x3d || r === 0x21 || r === 0x7e; // = ! ~
export const isQuoteRune = (r: number) => r === 0x2f || r === 0x7c || r === 0x22; // / | "
const isSeparatorRune = (r: number) => r === 0x2c || r === 0x2e; // , .
/** unicode.IsSpace */
const isSpace = (r: number) =>
  r === 0x20 || (r >= 0x09 && r <= 0x0d) || r === 0x85 || r === 0xa0 || r === 0x1680 ||
  (r >= 0x2000 && r <= 0x200a) || r === 0x2028 || r === 0x2029 || r === 0x202f || r === 0x205f || r === 0x3000;
/** unicode.IsGraphic || IsPunct … minus ',' and spaces (scanner.go isValueRune) */
const GRAPHIC = /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]$/u;
const isValueRune = (r: number) => r !== 0x2c && !isSpace(r) && r >= 0 && GRAPHIC.test(String.fromCodePoint(r));

function digitVal(r: number): number {
  if (r >= 0x30 && r <= 0x39) return r - 0x30;
  if (r >= 0x61 && r <= 0x66) return r - 0x61 + 10;
  if (r >= 0x41 && r <= 0x46) return r - 0x41 + 10;
  return 16;
}

export class Scanner {
  private readonly bytes: Buffer;
  pos = 0;
  ppos = 0;
  private value = false;
  err = '';

  constructor(private readonly input: string) {
    this.bytes = Buffer.from(input, 'utf8');
  }

  /** Byte-offset slice of the input. */
  slice(from: number, to: number): string {
    return this.bytes.subarray(from, to).toString('utf8');
  }

  private decode(at: number): { r: number; w: number } {
    const b0 = this.bytes[at]!;
    if (b0 < 0x80) return { r: b0, w: 1 };
    const w = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : b0 >= 0xc0 ? 2 : 1;
    const s = this.bytes.subarray(at, at + w).toString('utf8');
    const r = s.codePointAt(0)!;
    if (w === 1 || r === 0xfffd || Buffer.byteLength(String.fromCodePoint(r)) !== w) return { r: 0xfffd, w: 1 };
    return { r, w };
  }

  next(): number {
    if (this.pos >= this.bytes.length) return TOKEN.EOF;
    this.pos = this.ppos;
    if (this.ppos >= this.bytes.length) return TOKEN.EOF;
    const { r, w } = this.decode(this.ppos);
    this.ppos += w;
    if (r === 0xfffd && w === 1) {
      this.error('rune error');
      return TOKEN.Illegal;
    }
    if (r === 0) {
      this.error('unexpected null');
      return TOKEN.Illegal;
    }
    return r;
  }

  peek(): number {
    const pos = this.pos;
    const ppos = this.ppos;
    const ch = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return ch;
  }

  scan(): Token {
    let ch = this.next();
    let pos = this.pos;
    for (;;) {
      if (ch === TOKEN.EOF || ch === TOKEN.Illegal) return { pos: this.pos, tok: ch, text: '' };
      if (isQuoteRune(ch)) {
        const ok = this.scanQuoted(ch);
        return { pos, tok: ok ? TOKEN.Quoted : TOKEN.Illegal, text: this.slice(pos, this.ppos) };
      }
      if (isSeparatorRune(ch)) {
        this.value = false;
        return { pos, tok: TOKEN.Separator, text: this.slice(pos, this.ppos) };
      }
      if (isOperatorRune(ch)) {
        while (isOperatorRune(this.peek())) this.next();
        this.value = true;
        return { pos, tok: TOKEN.Operator, text: this.slice(pos, this.ppos) };
      }
      if (isSpace(ch)) {
        ch = this.next();
        pos = this.pos;
        continue;
      }
      if (this.value) {
        while (isValueRune(this.peek())) this.next();
        this.value = false;
        return { pos, tok: TOKEN.Value, text: this.slice(pos, this.ppos) };
      }
      if (isFieldRune(ch)) {
        while (isFieldRune(this.peek())) this.next();
        return { pos, tok: TOKEN.Field, text: this.slice(pos, this.ppos) };
      }
      return { pos: this.pos, tok: ch, text: '' };
    }
  }

  private scanQuoted(quote: number): boolean {
    let illegal = false;
    let ch = this.next();
    while (ch !== quote) {
      if (ch === 0x0a || ch < 0) {
        this.error('quoted literal not terminated');
        return false;
      }
      if (ch === 0x5c) {
        const [next, legal] = this.scanEscape(quote);
        ch = next;
        if (!legal) illegal = true;
      } else ch = this.next();
    }
    return !illegal;
  }

  private scanEscape(quote: number): [number, boolean] {
    const ch = this.next();
    switch (ch) {
      case 0x61: case 0x62: case 0x66: case 0x6e: case 0x72: case 0x74: case 0x76: case 0x5c: // a b f n r t v \
        return [this.next(), true];
      case 0x78: // x
        return this.scanDigits(this.next(), 16, 2);
      case 0x75: // u
        return this.scanDigits(this.next(), 16, 4);
      case 0x55: // U
        return this.scanDigits(this.next(), 16, 8);
      default:
        if (ch === quote) return [this.next(), true];
        if (ch >= 0x30 && ch <= 0x37) return this.scanDigits(ch, 8, 3);
        this.error('illegal escape sequence');
        return [ch, false];
    }
  }

  private scanDigits(first: number, base: number, n: number): [number, boolean] {
    let ch = first;
    while (n > 0 && digitVal(ch) < base) {
      ch = this.next();
      n--;
    }
    if (n > 0) {
      this.error('illegal numeric escape sequence');
      return [ch, false];
    }
    return [ch, true];
  }

  private error(msg: string): void {
    if (this.err === '') this.err = msg;
  }
}

/**
 * Unquoting of filter strings (containerd filters/quote.go, itself Go's strconv.Unquote
 * extended to `/…/` and `|…|`, which behave like double quotes). Throws on bad syntax.
 */
export class QuoteSyntaxError extends Error {
  constructor() {
    super('quote syntax error');
  }
}

function unhex(c: string): number | undefined {
  const v = Number.parseInt(c, 16);
  return /^[0-9a-fA-F]$/.test(c) ? v : undefined;
}

/** Returns the decoded bytes of a quoted literal (Go strings are bytes, e.g. "\xff"). */
export function unquote(s: string): string {
  if (s.length < 2) throw new QuoteSyntaxError();
  const quote = s[0]!;
  if (quote !== s[s.length - 1]) throw new QuoteSyntaxError();
  let body = s.slice(1, -1);
  if (quote !== '"' && quote !== "'" && quote !== '|' && quote !== '/') throw new QuoteSyntaxError();
  if (body.includes('\n')) throw new QuoteSyntaxError();
  if (!body.includes('\\') && !body.includes(quote)) {
    if (quote !== "'") return body;
    if ([...body].length === 1) return body;
  }
  const out: number[] = [];
  const pushRune = (cp: number) => out.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
  while (body.length > 0) {
    const c = body[0]!;
    if (c === quote) throw new QuoteSyntaxError();
    if (c !== '\\') {
      const cp = body.codePointAt(0)!;
      pushRune(cp);
      body = body.slice(cp > 0xffff ? 2 : 1);
    } else {
      if (body.length <= 1) throw new QuoteSyntaxError();
      const e = body[1]!;
      body = body.slice(2);
      const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92 };
      if (e in simple) out.push(simple[e]!);
      else if (e === 'x' || e === 'u' || e === 'U') {
        const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        if (body.length < n) throw new QuoteSyntaxError();
        let v = 0;
        for (let j = 0; j < n; j++) {
          const x = unhex(body[j]!);
          if (x === undefined) throw new QuoteSyntaxError();
          v = v * 16 + x;
        }
        body = body.slice(n);
        if (e === 'x') out.push(v);
        else {
          if (v > 0x10ffff) throw new QuoteSyntaxError();
          pushRune(v >= 0xd800 && v <= 0xdfff ? 0xfffd : v);
        }
      } else if (e >= '0' && e <= '7') {
        if (body.length < 2) throw new QuoteSyntaxError();
        let v = e.charCodeAt(0) - 48;
        for (let j = 0; j < 2; j++) {
          const x = body.charCodeAt(j) - 48;
          if (x < 0 || x > 7) throw new QuoteSyntaxError();
          v = (v << 3) | x;
        }
        body = body.slice(2);
        if (v > 255) throw new QuoteSyntaxError();
        out.push(v);
      } else if (e === "'" || e === '"' || e === '|' || e === '/') {
        if (e !== quote) throw new QuoteSyntaxError();
        out.push(e.charCodeAt(0));
      } else throw new QuoteSyntaxError();
    }
    if (quote === "'" && body.length !== 0) throw new QuoteSyntaxError();
  }
  return Buffer.from(out).toString('utf8');
}

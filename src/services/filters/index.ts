/**
 * containerd's filter language (containerd filters/parser.go, filter.go, adaptor.go):
 *
 *   selectors := selector ("," selector)*          all must match
 *   selector  := fieldpath (operator value)?       no operator = field present
 *   fieldpath := field ("." field)*                field = [A-Za-z0-9_]+ or "quoted"
 *   operator  := "==" | "!=" | "~="                 ~= is a Go (RE2) regexp
 *   value     := quoted | [^\s,]+                   /…/ and |…| quotes allowed after ~=
 *
 * Several filter strings are OR-ed (ParseAll). An empty string matches everything. A
 * malformed filter is InvalidArgument with containerd's "parse error: [before >|x|< after]"
 * message. Note that `|` is not an OR operator in containerd's language: it quotes a
 * regexp (`labels.x~=|a.*|`); OR is spelled as several filters (`--filter A --filter B`).
 */
import { invalidArgument } from '../errdefs.js';
import { QuoteSyntaxError, unquote } from './quote.js';
import { compileGoRegexp, RegexpSyntaxError } from './regexp.js';
import { Scanner, TOKEN } from './scanner.js';

/** Gives a field's value, or undefined when the field is absent. */
export interface Adaptor {
  field(path: string[]): string | undefined;
}

export interface Filter {
  match(adaptor: Adaptor): boolean;
}

type Op = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  op: Op;
  value: string;
  re?: RegExp;
}

export const ALWAYS: Filter = { match: () => true };

class ParseError extends Error {}

function matchSelector(s: Selector, a: Adaptor): boolean {
  const v = a.field(s.fieldpath);
  switch (s.op) {
    case 'present':
      return v !== undefined;
    case '==':
      return v !== undefined && v === s.value;
    case '!=':
      return (v ?? '') !== s.value;
    case '~=':
      return s.re!.test(v ?? '');
  }
}

class Parser {
  private readonly sc: Scanner;
  constructor(private readonly input: string) {
    this.sc = new Scanner(input);
  }

  private mkerr(pos: number, msg: string): ParseError {
    const bytes = Buffer.from(this.input, 'utf8');
    if (pos < bytes.length) {
      const b = bytes.subarray(0, pos).toString('utf8');
      const at = bytes.subarray(pos, pos + 1).toString('utf8');
      const af = bytes.subarray(pos + 1).toString('utf8');
      return new ParseError(`parse error: [${b} >|${at}|< ${af}]: ${msg}`);
    }
    return new ParseError(`parse error: [${this.input}]: ${msg}`);
  }

  parse(): Selector[] {
    const out = [this.selector()];
    for (;;) {
      const tok = this.sc.peek();
      if (tok === 0x2c) {
        const t = this.sc.scan();
        if (t.tok !== TOKEN.Separator) throw this.mkerr(t.pos, 'expected a separator');
        out.push(this.selector());
      } else if (tok === TOKEN.EOF) return out;
      else throw this.mkerr(this.sc.ppos, `unexpected input: ${tok >= 0 ? String.fromCodePoint(tok) : '\ufffd'}`);
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    const next = this.sc.peek();
    if (next === 0x2c || next === TOKEN.Separator || next === TOKEN.EOF) return { fieldpath, op: 'present', value: '' };
    const op = this.operator();
    const value = this.value(op === '~=');
    const sel: Selector = { fieldpath, op, value };
    if (op === '~=') {
      try {
        sel.re = compileGoRegexp(value);
      } catch (e) {
        throw this.mkerr(this.sc.pos, `invalid regular expression ${JSON.stringify(value)}: ${(e as RegexpSyntaxError).message}`);
      }
    }
    return sel;
  }

  private fieldpath(): string[] {
    const fs = [this.field()];
    while (this.sc.peek() === 0x2e) {
      const t = this.sc.scan();
      if (t.tok !== TOKEN.Separator) throw this.mkerr(t.pos, 'expected a field separator (`.`)');
      fs.push(this.field());
    }
    return fs;
  }

  private field(): string {
    const t = this.sc.scan();
    if (t.tok === TOKEN.Field) return t.text;
    if (t.tok === TOKEN.Quoted) return this.unquote(t.pos, t.text, false);
    if (t.tok === TOKEN.Illegal) throw this.mkerr(t.pos, this.sc.err);
    throw this.mkerr(t.pos, 'expected field or quoted');
  }

  private operator(): Op {
    const t = this.sc.scan();
    if (t.tok === TOKEN.Operator) {
      if (t.text === '==' || t.text === '!=' || t.text === '~=') return t.text;
      throw this.mkerr(t.pos, `unsupported operator ${JSON.stringify(t.text)}`);
    }
    if (t.tok === TOKEN.Illegal) throw this.mkerr(t.pos, this.sc.err);
    throw this.mkerr(t.pos, 'expected an operator ("=="|"!="|"~=")');
  }

  private value(allowAltQuotes: boolean): string {
    const t = this.sc.scan();
    if (t.tok === TOKEN.Value || t.tok === TOKEN.Field) return t.text;
    if (t.tok === TOKEN.Quoted) return this.unquote(t.pos, t.text, allowAltQuotes);
    if (t.tok === TOKEN.Illegal) throw this.mkerr(t.pos, this.sc.err);
    throw this.mkerr(t.pos, 'expected value or quoted');
  }

  private unquote(pos: number, s: string, allowAlts: boolean): string {
    if (!allowAlts && s[0] !== "'" && s[0] !== '"') throw this.mkerr(pos, 'invalid quote encountered');
    try {
      return unquote(s);
    } catch (e) {
      if (e instanceof QuoteSyntaxError) throw this.mkerr(pos, `unquoting failed: ${e.message}`);
      throw e;
    }
  }
}

/** Parses one filter string (AND of selectors). */
export function parseFilter(s: string): Filter {
  if (s === '') return ALWAYS;
  let sels: Selector[];
  try {
    sels = new Parser(s).parse();
  } catch (e) {
    if (e instanceof ParseError) throw invalidArgument(`filters: ${e.message}`, { filter: s });
    throw e;
  }
  return { match: (a) => sels.every((sel) => matchSelector(sel, a)) };
}

/** containerd filters.ParseAll: any of the filters matches; none given = match all. */
export function parseFilters(ss: readonly string[]): Filter {
  if (ss.length === 0) return ALWAYS;
  const fs = ss.map(parseFilter);
  return { match: (a) => fs.some((f) => f.match(a)) };
}

/** An adaptor over a plain object, as containerd's reflection-free adaptors do for maps. */
export function mapAdaptor(fields: Record<string, string | Record<string, string> | undefined>): Adaptor {
  return {
    field(path) {
      const v = fields[path[0] ?? ''];
      if (v === undefined) return undefined;
      if (typeof v === 'string') return path.length === 1 ? v : undefined;
      const k = path.slice(1).join('.');
      return Object.prototype.hasOwnProperty.call(v, k) ? v[k] : undefined;
    },
  };
}

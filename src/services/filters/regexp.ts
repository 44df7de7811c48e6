/**
 * Go RE2 regular expressions (used by the `~=` operator) compiled to JavaScript RegExp.
 * The common RE2 forms are translated: leading `(?flags)` (i, m, s), `(?P<name>…)`, `\A`,
 * `\z`, `\pL`/`\PL`, POSIX classes `[[:alpha:]]`. RE2 rejects backreferences and
 * lookarounds, so do we. Anything that would change meaning is InvalidArgument.
 *
 * Deviation: containerd compiles the regexp when matching and treats an invalid one as
 * "no match"; we reject it when parsing, so a typo is reported instead of matching nothing.
 */
const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z', alpha: 'A-Za-z', ascii: '\\x00-\\x7F', blank: '\\t ', cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9', graph: '!-~', lower: 'a-z', print: ' -~', punct: '!-/:-@\\[-`{-~', space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z', word: '0-9A-Za-z_', xdigit: '0-9A-Fa-f',
};

export class RegexpSyntaxError extends Error {}

export function compileGoRegexp(src: string): RegExp {
  let flags = 'u';
  let s = src;
  const lead = /^\(\?([imsU]+)\)/.exec(s);
  if (lead) {
    for (const f of lead[1]!) {
      if (f === 'U') throw new RegexpSyntaxError('the (?U) flag has no JavaScript equivalent');
      if (!flags.includes(f)) flags += f;
    }
    s = s.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') {
      const n = s[i + 1];
      if (n === undefined) throw new RegexpSyntaxError('trailing backslash');
      if (!inClass && n === 'A') out += '(?<![\\s\\S])';
      else if (!inClass && n === 'z') out += '(?![\\s\\S])';
      else if ((n === 'p' || n === 'P') && s[i + 2] !== '{') {
        const cls = s[i + 2];
        if (!cls || !/[A-Za-z]/.test(cls)) throw new RegexpSyntaxError('bad \\p class');
        out += `\\${n}{${cls}}`;
        i += 2;
        continue;
      } else if (/[1-9]/.test(n)) throw new RegexpSyntaxError('backreferences are not supported by RE2');
      else out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && s[i + 1] === ':') {
        const end = s.indexOf(':]', i + 2);
        if (end < 0) throw new RegexpSyntaxError('unterminated POSIX class');
        let name = s.slice(i + 2, end);
        const neg = name.startsWith('^');
        if (neg) name = name.slice(1);
        const range = POSIX[name];
        if (!range) throw new RegexpSyntaxError(`unknown POSIX class ${name}`);
        if (neg) throw new RegexpSyntaxError('negated POSIX classes are not supported');
        out += range;
        i = end + 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (s[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (s[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && s[i + 1] === '?') {
      const rest = s.slice(i + 2);
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (rest.startsWith(':')) {
        out += '(?:';
        i += 2;
        continue;
      }
      throw new RegexpSyntaxError(`unsupported group syntax (?${rest.slice(0, 2)}`);
    }
    out += c;
  }
  try {
    return new RegExp(out, flags);
  } catch (e) {
    throw new RegexpSyntaxError((e as Error).message);
  }
}

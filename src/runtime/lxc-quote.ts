import { MosError } from '../base/index.js';

// lxc-execute splits `lxc.execute.cmd` with LXC's lxc_string_split_quoted (src/lxc/string_utils.c):
// words separated by whitespace; a word that STARTS with ' or " runs to the next same quote, taken
// literally (no escapes); quotes inside a word are literal. So every argv element can be written unless
// it needs quoting and contains both quote characters; such a command is refused, never mangled.

/** Splits a string the way LXC 5 splits `lxc.execute.cmd` (a mirror of lxc_string_split_quoted). */
export function splitLxcQuoted(value: string): string[] {
  const words: string[] = [];
  let state: ' ' | 'a' | '"' | "'" = ' ';
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const space = /\s/.test(c);
    if (state === ' ') {
      if (space) continue;
      start = i;
      state = c === '"' || c === "'" ? c : 'a';
    } else if (state === 'a') {
      if (space) {
        words.push(value.slice(start, i));
        state = ' ';
      }
    } else if (c === state) {
      words.push(value.slice(start + 1, i));
      state = ' ';
    }
  }
  // LXC completes an unterminated trailing word too (a quoted one keeps its opening quote).
  if (state === 'a') words.push(value.slice(start));
  else if (state !== ' ') words.push(value.slice(start));
  return words;
}

/**
 * Joins argv into an `lxc.execute.cmd` value that LXC splits back into exactly `argv`. Throws
 * INPUT_INVALID naming `subject` when an element cannot be expressed (line break, NUL, or both quote
 * characters in an element that needs quoting).
 */
export function quoteLxcArgv(argv: readonly string[], subject: string): string {
  return argv
    .map((arg, i) => {
      if (/[\n\r\0]/.test(arg)) {
        throw new MosError({ code: 'INPUT_INVALID', subject: `${subject}[${i}]`, message: 'command argument contains a line break or NUL', hint: 'LXC config values are single lines; pass such data through a file or env' });
      }
      const needsQuote = arg === '' || /\s/.test(arg) || arg.startsWith('"') || arg.startsWith("'");
      if (!needsQuote) return arg;
      if (!arg.includes('"')) return `"${arg}"`;
      if (!arg.includes("'")) return `'${arg}'`;
      throw new MosError({
        code: 'INPUT_INVALID',
        subject: `${subject}[${i}]`,
        message: `command argument ${JSON.stringify(arg)} has whitespace and both quote characters; LXC cannot express it`,
        hint: 'wrap the command in a script inside the image',
      });
    })
    .join(' ');
}

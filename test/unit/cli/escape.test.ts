import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { escapeLine, escapeText, jsonText, table } from '../../../src/cli/output.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

// what a terminal acts on: C0, DEL, C1, line/paragraph separators, bidi controls
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const hostile = fc.array(
  fc.oneof(
    fc.string({ unit: 'binary' }),
    fc.constantFrom('\x1b]0;pwned\x07', '\x1b[2J', '\x1b]52;c;ZXZpbA==\x1b\\', '\u009b31m', '\u202egnp.exe', '\r', '\n', '\t', '\x7f', '\u2028', '\u2066'),
    fc.integer({ min: 0, max: 0x2fff }).map((n) => String.fromCharCode(n)),
  ),
).map((parts) => parts.join(''));

const printable = fc.string({ unit: 'grapheme' }).filter((s) => !CONTROL.test(s));

test('escapeLine: no control character survives, whatever the input', () => {
  fc.assert(fc.property(hostile, (s) => !CONTROL.test(escapeLine(s))), { numRuns: fuzzRuns() });
});

test('escapeText: only newline and tab survive', () => {
  fc.assert(fc.property(hostile, (s) => !CONTROL_BUT_LAYOUT.test(escapeText(s))), { numRuns: fuzzRuns() });
});

test('printable input is unchanged by both', () => {
  fc.assert(fc.property(printable, (s) => escapeLine(s) === s && escapeText(s) === s), { numRuns: fuzzRuns() });
});

test('jsonText: valid JSON that parses to the same value, with no control character but its own newlines', () => {
  fc.assert(
    fc.property(fc.dictionary(hostile, fc.oneof(hostile, fc.integer(), fc.array(hostile))), (v) => {
      const t = jsonText(v, 2);
      assert.deepEqual(JSON.parse(t), JSON.parse(JSON.stringify(v)));
      return !CONTROL_BUT_LAYOUT.test(t);
    }),
    { numRuns: fuzzRuns() },
  );
});

test('escapes are shown, not acted on: ESC, OSC, C1 CSI, bidi override, newline in a cell', () => {
  assert.equal(escapeLine('a\x1b]0;t\x07b'), 'a\\x1b]0;t\\x07b');
  assert.equal(escapeLine('\u009b2J'), '\\x9b2J');
  assert.equal(escapeLine('evil\u202egnp.sh'), 'evil\\u202egnp.sh');
  assert.equal(escapeText('one\ntwo\x1b[2J'), 'one\ntwo\\x1b[2J');
  assert.equal(jsonText({ n: '\x1b\u009b\u202e\u2028' }), '{"n":"\\u001b\\u009b\\u202e\\u2028"}');
  const t = table(['NAME', 'TAG'], [['a\nb', '\x1b[31mred']]);
  assert.equal(t, 'NAME    TAG\na\\x0ab  \\x1b[31mred\n');
});

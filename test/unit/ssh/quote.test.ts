import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { shCommand, shQuote } from '../../../src/ssh/quote.js';
import { TsmError } from '../../../src/errors/errors.js';

const nasty = [
  '',
  'plain',
  'two words',
  "it's",
  "'",
  "''",
  '"double"',
  '$HOME',
  '$(id)',
  '`id`',
  'a\nb',
  'tab\there',
  '\\',
  '; rm -rf /tmp/never',
  '*',
  '~',
  '!',
  '#comment',
  '-n',
  'ünïcödé ☃',
  "mix 'single' \"double\" $(x) `y` \\ \n end",
];

test('every argument is single-quoted', () => {
  assert.equal(shQuote(''), "''");
  assert.equal(shQuote('a b'), "'a b'");
  assert.equal(shQuote("it's"), "'it'\\''s'");
  assert.equal(shQuote('$(id)'), "'$(id)'");
  assert.equal(shQuote('`id`'), "'`id`'");
  assert.equal(shQuote('a\nb'), "'a\nb'");
  assert.equal(shCommand(['echo', 'a b', '']), "'echo' 'a b' ''");
});

test('a POSIX shell gives back every argument verbatim', () => {
  const out = execFileSync('sh', ['-c', `${shCommand(['printf', '%s\\0', ...nasty])}`], { encoding: 'utf8' });
  assert.deepEqual(out.split('\0').slice(0, -1), nasty);
  // bash as a login shell would be the same
  const out2 = execFileSync('bash', ['-c', `${shCommand(['printf', '%s\\0', ...nasty])}`], { encoding: 'utf8' });
  assert.deepEqual(out2.split('\0').slice(0, -1), nasty);
});

test('NUL bytes and empty commands are refused', () => {
  assert.throws(() => shQuote('a\0b'), (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG' && !e.oneLine().includes('\n'));
  assert.throws(() => shCommand([]), (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG');
});

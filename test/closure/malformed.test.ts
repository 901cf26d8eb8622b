// A corpus of malformed closure inputs across the three formats: each must be
// a ClosureError whose message names the file, the entry and the problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClosureError } from '../../src/closure/closure.js';
import { parseAttrsJson } from '../../src/closure/structured-attrs.js';
import { parseLegacyClosure } from '../../src/closure/legacy.js';
import { parsePathInfoJson } from '../../src/closure/path-info-json.js';

const P = '/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1';
const Q = '/nix/store/s32cldbh9pfzd9z82izi12mdlrw0yf8q-libidn2-2.3.7';
const R = '/nix/store/rxganm4ibf31qngal3j3psp20mak37yy-xgcc-13.2.0-libgcc';
const NIX32 = 'sha256:11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila';
const SRI = 'sha256-ikbE7uSRHrhCsbLxRKk3a+RaQ9Haa3r4z/pDqUIXdYc=';
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type Entry = Record<string, unknown>;
const good = (over: Entry = {}): Entry => ({ path: P, narHash: NIX32, narSize: 100, references: [P], ...over });
const attrs = (...entries: unknown[]) => JSON.stringify({ closure: entries });
const without = (k: string): Entry => {
  const e = good();
  delete e[k];
  return e;
};
/** The prefix every entry-level message has in the structured-attrs cases. */
const at0 = `^attrs\\.json: closure\\[0\\] \\(${esc(P)}\\): `;

interface Case {
  name: string;
  parse: () => unknown;
  message: RegExp;
}

const attrsCase = (name: string, text: string, message: RegExp): Case => ({
  name: `attrs: ${name}`,
  parse: () => parseAttrsJson(text, { file: 'attrs.json' }),
  message,
});
const legacyCase = (name: string, lines: string[], message: RegExp): Case => ({
  name: `legacy: ${name}`,
  parse: () => parseLegacyClosure(lines.join('\n') + '\n', { file: 'closure' }),
  message,
});
const pathInfoCase = (name: string, text: string, message: RegExp): Case => ({
  name: `path-info: ${name}`,
  parse: () => parsePathInfoJson(text, { file: 'pi.json' }),
  message,
});

const cases: Case[] = [
  // --- structured attrs: the top level
  attrsCase('not JSON', '{"closure": [', /^attrs\.json: not valid JSON: .*(JSON|position|end)/i),
  attrsCase('empty file', '', /^attrs\.json: not valid JSON/),
  attrsCase('top level is an array', '[]', /^attrs\.json: expected a JSON object at the top level, got an array/),
  attrsCase('missing key lists the keys present', '{"outputs":{},"name":"x"}', /no top-level key "closure"; top-level keys present: "outputs", "name"/),
  attrsCase(
    'missing key names the exportReferencesGraph keys',
    '{"exportReferencesGraph":{"graph":[]},"graph":[]}',
    /no top-level key "closure".*exportReferencesGraph exports: "graph"/,
  ),
  attrsCase('key is not an array', '{"closure":{"path":"x"}}', /^attrs\.json: "closure" must be an array of path-info objects, got an object/),
  attrsCase('key is a string', '{"closure":"/nix/store/x"}', /"closure" must be an array.*got string/),
  // --- structured attrs: entries
  attrsCase('entry not an object', attrs(good(), 'x'), /^attrs\.json: closure\[1\]: expected an object, got string "x"/),
  attrsCase('entry is an array', attrs([P]), /^attrs\.json: closure\[0\]: expected an object, got an array/),
  attrsCase('missing path', attrs(without('path')), /^attrs\.json: closure\[0\]: path: missing \(required\)/),
  attrsCase('missing narHash', attrs(without('narHash')), new RegExp(at0 + 'narHash: missing \\(required\\)')),
  attrsCase('missing narSize', attrs(without('narSize')), new RegExp(at0 + 'narSize: missing \\(required\\)')),
  attrsCase('missing references', attrs(without('references')), new RegExp(at0 + 'references: missing \\(required\\)')),
  attrsCase('path is a number', attrs(good({ path: 42 })), /closure\[0\]: path: expected a string, got number 42/),
  attrsCase('narSize is a string', attrs(good({ narSize: '100' })), new RegExp(at0 + 'narSize: expected a number, got string "100"')),
  attrsCase('references is a string', attrs(good({ references: P })), new RegExp(at0 + 'references: expected an array, got string')),
  attrsCase('a reference is a number', attrs(good({ references: [P, 7] })), new RegExp(at0 + 'references\\[1\\]: expected a string, got number 7')),
  attrsCase('ca is a number', attrs(good({ ca: 1 })), new RegExp(at0 + 'ca: expected a string, got number 1')),
  attrsCase('ca is garbage', attrs(good({ ca: 'sha256:abc' })), new RegExp(at0 + 'ca: invalid content address "sha256:abc"')),
  attrsCase('valid is a string', attrs(good({ valid: 'yes' })), new RegExp(at0 + 'valid: expected a boolean')),
  attrsCase('closureSize negative', attrs(good({ closureSize: -5 })), new RegExp(at0 + 'closureSize: .*got -5 \\(negative\\)')),
  // bad hash strings of each kind
  attrsCase(
    'narHash nixbase32 with a bad character',
    attrs(good({ narHash: 'sha256:11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ile' })),
    new RegExp(at0 + 'narHash: expected sha256:<52 nixbase32 chars>, SRI .* or hex .*, got "sha256:11vm.*ile": .*nixbase32'),
  ),
  attrsCase('narHash too short', attrs(good({ narHash: 'sha256:11vm2x' })), new RegExp(at0 + 'narHash: expected sha256:<52 nixbase32 chars>.*got "sha256:11vm2x": length 6')),
  attrsCase(
    'narHash SRI with a bad length',
    attrs(good({ narHash: 'sha256-ikbE7uSRHrhCsbLxRKk3a+RaQ9Haa3r4z/pDqUIX' })),
    new RegExp(at0 + 'narHash: expected sha256:.*got "sha256-ikbE7u.*": sha256 digest must be 32 bytes, got 30'),
  ),
  attrsCase('narHash hex with a non-hex char', attrs(good({ narHash: 'sha256:' + 'g'.repeat(64) })), new RegExp(at0 + 'narHash: .*got "sha256:gggg.*": .*hex')),
  attrsCase('narHash of another algorithm', attrs(good({ narHash: 'sha1:' + '0'.repeat(40) })), new RegExp(at0 + 'narHash: .*expected a sha256 hash, got sha1')),
  attrsCase('narHash without algorithm', attrs(good({ narHash: '11vm2x1ajhzsrzw7lsyss51mmr3b6yll9wdjn51bh7liwkpc8ila' })), new RegExp(at0 + 'narHash: expected sha256:')),
  attrsCase('narHash is a number', attrs(good({ narHash: 5 })), new RegExp(at0 + 'narHash: expected a string, got number 5')),
  // store paths
  attrsCase('path outside the store', attrs(good({ path: '/usr/lib/libfoo' })), /^attrs\.json: closure\[0\] \(\/usr\/lib\/libfoo\): path: invalid store path "\/usr\/lib\/libfoo": must start with "\/nix\/store\/"/),
  attrsCase('relative store path', attrs(good({ path: '7n0mbqydcipkpbxm24fab066lxk68aqk-libunistring-1.1' })), /closure\[0\] .*path: invalid store path .*must start with "\/nix\/store\/"/),
  attrsCase('store path with a sub-path', attrs(good({ path: P + '/lib/libunistring.so' })), /closure\[0\] .*path: invalid store path .*sub-paths are not allowed/),
  attrsCase(
    'reference with a sub-path',
    attrs(good({ references: [P + '/bin'] })),
    new RegExp(at0 + 'references\\[0\\]: invalid store path ".*/bin": sub-paths are not allowed'),
  ),
  attrsCase('bad hash chars in a store path (e, o, u, t)', attrs(good({ path: '/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqe-libunistring-1.1' })), /closure\[0\] .*path: invalid store path .*nixbase32 character "e"/),
  attrsCase('short hash in a store path', attrs(good({ path: '/nix/store/7n0mbqyd-libunistring-1.1' })), /closure\[0\] .*path: invalid store path .*(length|"-")/),
  attrsCase('bad name char in a store path', attrs(good({ path: '/nix/store/7n0mbqydcipkpbxm24fab066lxk68aqk-lib unistring' })), /closure\[0\] .*path: invalid store path .*character " " not allowed/),
  // the set
  attrsCase(
    'a reference outside the set',
    attrs(good(), good({ path: Q, references: [P, R, Q] })),
    new RegExp(`^attrs\\.json: closure\\[1\\] \\(${esc(Q)}\\): references: ${esc(R)} is not in the closure`),
  ),
  attrsCase('duplicate entries', attrs(good(), good({ path: Q, references: [] }), good()), new RegExp(`^attrs\\.json: closure\\[2\\] \\(${esc(P)}\\): duplicate entry: the same store path as closure\\[0\\]`)),
  // sizes
  attrsCase('negative narSize', attrs(good({ narSize: -1 })), new RegExp(at0 + 'narSize: expected a non-negative integer.*got -1 \\(negative\\)')),
  attrsCase('fractional narSize', attrs(good({ narSize: 1.5 })), new RegExp(at0 + 'narSize: .*got 1\\.5 \\(not a whole number\\)')),
  attrsCase('absurd narSize (2^53)', attrs(good({ narSize: 2 ** 53 })), new RegExp(at0 + 'narSize: .*got 9007199254740992 \\(too large')),
  attrsCase('absurd narSize (1e300)', '{"closure":[' + JSON.stringify(good()).replace('"narSize":100', '"narSize":1e300') + ']}', new RegExp(at0 + 'narSize: .*too large')),
  attrsCase('null narSize', attrs(good({ narSize: null })), new RegExp(at0 + 'narSize: expected a number, got null')),
  attrsCase('valid: false', attrs(good({ valid: false })), new RegExp(at0 + 'valid: false: the store does not have this path')),

  // --- legacy
  legacyCase('non-numeric count', [P, '', 'one', P], /^closure: line 3: entry 0 \(\/nix\/store\/7n0m.*\): reference count: expected a decimal number, got "one"/),
  legacyCase('negative count', [P, '', '-1'], /line 3: entry 0 .*reference count: expected a decimal number, got "-1"/),
  legacyCase('absurd count', [P, '', '12345678901', P], /line 3: entry 0 .*reference count: expected a decimal number, got "12345678901" \(implausibly large\)/),
  legacyCase('count with spaces', [P, '', ' 1', P], /line 3: entry 0 .*reference count: expected a decimal number, got " 1"/),
  legacyCase('truncated in the references', [P, '', '1', P, Q, '', '3', P, Q], new RegExp(`^closure: line 5: entry 1 \\(${esc(Q)}\\): truncated: the reference count is 3 but the file ends after 2 reference\\(s\\)`)),
  legacyCase('truncated after the path', [P], /^closure: line 1: entry 0 .*truncated: the file ends after the path/),
  legacyCase('truncated after the deriver line', [P, ''], /^closure: line 1: entry 0 .*truncated: .*expected the reference count/),
  legacyCase('a non-store path', [P, '', '0', '/tmp/foo', '', '0'], /^closure: line 4: entry 1: path: invalid store path "\/tmp\/foo": must start with "\/nix\/store\/"/),
  legacyCase('a reference with a sub-path', [P, '', '1', P + '/bin'], /^closure: line 4: entry 0 .*: references\[0\]: invalid store path .*sub-paths are not allowed/),
  legacyCase('a reference outside the set', [P, '', '1', Q], new RegExp(`^closure: line 1: entry 0 \\(${esc(P)}\\): references: ${esc(Q)} is not in the closure`)),
  legacyCase('duplicate entries', [P, '', '0', P, '', '0'], /^closure: line 4: entry 1 .*duplicate entry: the same store path as line 1: entry 0/),
  legacyCase('deriver that is not a .drv', [P, Q, '0'], /^closure: line 2: entry 0 .*deriver: expected an empty line or a \.drv store path, got "\/nix\/store\/s32c/),
  legacyCase('the --hash-given format', [P, NIX32, '100', '', '0'], /line 2: entry 0 .*deriver: .*--hash-given/),
  legacyCase('an empty line where a path belongs', [P, '', '0', '', '', '0'], /^closure: line 4: entry 1: path: expected an absolute store path, got an empty line/),
  legacyCase('JSON given to the legacy parser', [JSON.stringify({ closure: [] })], /^closure: line 1: entry 0: path: invalid store path .*must start with/),

  // --- nix path-info --json
  pathInfoCase('not JSON', 'error: path is not valid', /^pi\.json: not valid JSON: /),
  pathInfoCase('a number', '42', /^pi\.json: expected the output of nix path-info --json: an array .* or an object keyed by store path .*got number 42/),
  pathInfoCase('valid: false (array)', JSON.stringify([{ path: P, valid: false }]), new RegExp(`^pi\\.json: \\[0\\] \\(${esc(P)}\\): valid: false: the store does not have this path`)),
  pathInfoCase('null value (object)', JSON.stringify({ [P]: null }), new RegExp(`^pi\\.json: \\[0\\] \\(${esc(P)}\\): value is null .*: the store does not have this path`)),
  pathInfoCase('valid: false (object)', JSON.stringify({ [P]: { valid: false } }), new RegExp(`^pi\\.json: \\[0\\] \\(${esc(P)}\\): valid: false`)),
  pathInfoCase('missing path (array)', JSON.stringify([{ narHash: SRI, narSize: 1, references: [] }]), /^pi\.json: \[0\]: path: missing \(required\)/),
  pathInfoCase('object key not a store path', JSON.stringify({ '/nix/store/foo': { narHash: SRI, narSize: 1, references: [] } }), /^pi\.json: \[0\] \(\/nix\/store\/foo\): path \(the object key\): invalid store path/),
  pathInfoCase('path inside differs from the key', JSON.stringify({ [P]: { path: Q, narHash: SRI, narSize: 1, references: [] } }), /\[0\] .*: path: ".*libidn2-2\.3\.7" differs from the object key/),
  pathInfoCase('bad SRI narHash', JSON.stringify([{ path: P, narHash: 'sha256-abc', narSize: 1, references: [] }]), /\[0\] .*: narHash: expected sha256:.*got "sha256-abc": /),
  pathInfoCase('bad signature', JSON.stringify([{ path: P, narHash: SRI, narSize: 1, references: [], signatures: ['cache.nixos.org-1:AAAA'] }]), /\[0\] .*: signatures\[0\]: invalid signature "cache\.nixos\.org-1:AAAA": expected 64 bytes/),
  pathInfoCase('signatures not an array', JSON.stringify([{ path: P, narHash: SRI, narSize: 1, references: [], signatures: 'x:y' }]), /\[0\] .*: signatures: expected an array, got string/),
  pathInfoCase('deriver not a .drv', JSON.stringify([{ path: P, narHash: SRI, narSize: 1, references: [], deriver: Q }]), /\[0\] .*: deriver: expected the store path of a \.drv file/),
  pathInfoCase('deriver not a store path', JSON.stringify([{ path: P, narHash: SRI, narSize: 1, references: [], deriver: 'unknown-deriver' }]), /\[0\] .*: deriver: invalid store path "unknown-deriver"/),
  pathInfoCase('reference outside the set', JSON.stringify([{ path: P, narHash: SRI, narSize: 1, references: [P, Q] }]), new RegExp(`\\[0\\] .*: references: ${esc(Q)} is not in the closure`)),
  pathInfoCase('fractional narSize', JSON.stringify({ [P]: { narHash: SRI, narSize: 0.25, references: [] } }), /\[0\] .*: narSize: .*got 0\.25 \(not a whole number\)/),
  pathInfoCase('unsupported format version', JSON.stringify([{ version: 2, path: P, narHash: SRI, narSize: 1, references: [] }]), /\[0\] .*: version: format version number 2 is not supported/),
  pathInfoCase('entry not an object', JSON.stringify([P]), /^pi\.json: \[0\]: expected an object, got string/),
  pathInfoCase('duplicate entries (array)', JSON.stringify([{ path: P, narHash: SRI, narSize: 1, references: [] }, { path: P, narHash: SRI, narSize: 1, references: [] }]), /^pi\.json: \[1\] .*duplicate entry: the same store path as \[0\]/),
];

test('the malformed corpus is big enough', () => {
  assert.ok(cases.length >= 20, String(cases.length));
  assert.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are unique');
});

for (const c of cases) {
  test(`malformed: ${c.name}`, () => {
    assert.throws(c.parse, (e: unknown) => {
      assert.ok(e instanceof ClosureError, `expected a ClosureError, got ${String(e)}`);
      assert.match(e.message, c.message);
      return true;
    });
  });
}

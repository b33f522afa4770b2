import { t } from 'tap';
import { compareVersions, compareNatural } from '../../src/manifest/index.js';

const sign = (n: number) => Math.sign(n);
const cases: [string, string, number][] = [
  // semver when both parse
  ['1.0.0', '1.0.1', -1],
  ['1.0.2', '1.0.10', -1],
  ['1.10.0', '1.9.9', 1],
  ['2.0.0', '2.0.0', 0],
  ['v1.2.3', '1.2.3', 0],
  ['1.0.0-alpha', '1.0.0', -1],
  ['1.0.0-alpha', '1.0.0-alpha.1', -1],
  ['1.0.0-alpha.1', '1.0.0-alpha.beta', -1],
  ['1.0.0-beta.2', '1.0.0-beta.11', -1],
  ['1.0.0-rc.1', '1.0.0', -1],
  ['1.0.0+build.1', '1.0.0+build.2', 0],
  ['99999999999999999999.0.0', '99999999999999999998.0.0', 1], // past 2^53: natural order, same answer
  ['1.0.0-alpha.beta', '1.0.0-beta', -1],
  ['1.0.0-beta.11', '1.0.0-rc.1', -1],
  ['1.0.0-1', '1.0.0-alpha', -1], // numeric identifiers rank below alphanumeric ones
  ['1.0.0-alpha', '1.0.0-alpha.0', -1],
  ['v2.0.0-rc.1', '1.99.99', 1],
  ['1.2.3+a', 'v1.2.3+b', 0],
  // natural order otherwise (including strings semver only accepts loosely)
  ['01.2.3', '1.2.4', -1],
  ['1.0.0-rc.01', '1.0.0-rc.1', 0], // leading zero: not semver, so natural order, where 01 = 1
  [' 1.0.0', '1.0.0', -1], // whitespace is not trimmed away: ' ' sorts before '1'
  ['V1.0.0', 'v1.0.0', -1],
  ['1.0.0-rc.1', '1.0', 1], // only one side is semver: natural order
  ['1.0', '1.0.1', -1],
  ['v0.0.19.231225', 'v0.0.19.231226', -1],
  ['build-3', 'build-20', -1],
  ['2024.01', '2023.12', 1],
  ['abc', 'abd', -1],
  ['', '1', -1],
  ['1.2', '1.2', 0],
];
for (const [a, b, want] of cases) {
  t.test(`${a} vs ${b}`, async (t) => {
    t.equal(sign(compareVersions(a, b)), want);
    t.equal(sign(compareVersions(b, a)), -want, 'antisymmetric');
  });
}

t.test('natural order is a total order on a sample', async (t) => {
  const sample = ['1', '1.0', '1.0.0', '1.10', '1.9', 'a1', 'a10', 'a2', 'b', ''];
  const sorted = [...sample].sort(compareNatural);
  t.same(sorted, ['', '1', '1.0', '1.0.0', '1.9', '1.10', 'a1', 'a2', 'a10', 'b']);
});

/** src/machine, loaded on first use so that --help, --version and usage errors start without it. */
export const machine = () => import('../../src/machine/index.js');

/** src/machine, loaded on first use so that --help, --version and usage errors start without it. */
export const machine = () => import('../../src/machine/index.js');
/** src/serve (the upgrade API and its client), loaded only by serve and by --server. */
export const serve = () => import('../../src/serve/index.js');

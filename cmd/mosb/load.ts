/** src/build, loaded on first use so that --help, --version and usage errors start without it. */
export const build = () => import('../../src/build/index.js');

// The downloader child's entry: run directly when mosctl is not bundled, and the entry of the bundle's
// downloader.cjs (which the bundle's loader runs for `mosctl __downloader`).
import { runDownloaderChild } from './child.js';

runDownloaderChild();

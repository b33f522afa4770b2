// The downloader child's entry when mosctl is not bundled (the bundle runs it as `mosctl __downloader`).
import { runDownloaderChild } from './child.js';

runDownloaderChild();

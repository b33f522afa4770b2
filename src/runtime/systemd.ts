import { checkContainerName, checkPath } from './validate.js';

/**
 * The systemd unit of a container target (pure; for `--systemd` on hosts that run systemd). It runs the
 * same config as `startContainer`, in the foreground, so systemd supervises it and restarts it on failure.
 */
export function renderSystemdUnit(name: string, opts: { lxcPath: string; lxcBin?: string }): string {
  checkContainerName(name);
  checkPath(opts.lxcPath, `container ${name}: lxcPath`);
  const bin = opts.lxcBin ?? '/usr/bin';
  return [
    '[Unit]',
    `Description=mosctl container ${name}`,
    'DefaultDependencies=no',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    `ExecStart=${bin}/lxc-execute -n ${name} -P ${opts.lxcPath}`,
    `ExecStop=${bin}/lxc-stop -n ${name} -P ${opts.lxcPath}`,
    'Restart=on-failure',
    'RestartSec=1',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

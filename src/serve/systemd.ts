/**
 * `mosctl serve --systemd-unit`: a service unit for the upgrade API. With `socket`, the service takes
 * its listening socket from systemd (mosctl-api.socket, fd 3), so the port is open from early boot and
 * the server starts on the first connection.
 */
export function systemdUnit(opts: { mosctl: string; args: readonly string[]; socket: boolean }): string {
  const exec = [opts.mosctl, 'serve', ...opts.args, ...(opts.socket ? ['--listen-fd', '3'] : [])].map(quote).join(' ');
  return [
    '[Unit]',
    'Description=mosctl upgrade API (mutual TLS)',
    'Documentation=https://github.com/project-machine/mos',
    'After=local-fs.target mos-boot-setup.service',
    ...(opts.socket ? ['Requires=mosctl-api.socket'] : []),
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    'Restart=on-failure',
    'RestartSec=2s',
    // SIGTERM cancels an operation before its commit point and lets one past it finish.
    'KillMode=mixed',
    'TimeoutStopSec=120s',
    'NoNewPrivileges=yes',
    'PrivateTmp=yes',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export function systemdSocket(opts: { listen: string }): string {
  return ['[Unit]', 'Description=mosctl upgrade API socket', '', '[Socket]', `ListenStream=${opts.listen}`, 'NoDelay=yes', '', '[Install]', 'WantedBy=sockets.target', ''].join('\n');
}

function quote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/(["\\$`])/g, '\\$1')}"`;
}

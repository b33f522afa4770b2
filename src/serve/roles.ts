import { MosError } from '../base/index.js';
import type { ClientIdentity } from '../trust/index.js';

/**
 * Roles of the upgrade API, least first. A client's role is the highest of these among the `O=`
 * (organization) values of its certificate subject, as Talos does with `os:admin`/`os:reader`; any
 * other `O=` value is ignored, and a certificate naming none of them is refused (403).
 */
export const ROLES = ['mos:reader', 'mos:apps', 'mos:admin'] as const;
export type Role = (typeof ROLES)[number];

export function roleOf(id: ClientIdentity): Role | undefined {
  let best = -1;
  for (const o of id.organizations) best = Math.max(best, ROLES.indexOf(o as Role));
  return best < 0 ? undefined : ROLES[best];
}

export function allows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/**
 * The `authorize` hook for an update asked by `role`: mos:apps may apply a signed manifest only if it
 * changes container and fs-only targets, never hostfs (added, changed or removed).
 */
export function updateAuthorizer(role: Role): ((plan: unknown, incoming: unknown, touched: { readonly hostfs: readonly string[] }) => void) | undefined {
  if (allows(role, 'mos:admin')) return undefined;
  return (_plan, _incoming, touched) => {
    if (touched.hostfs.length > 0) {
      throw new MosError({
        code: 'API_FORBIDDEN',
        subject: `role ${role}`,
        message: `may not change the hostfs target (${touched.hostfs.join(', ')}): only mos:admin may`,
        hint: 'ask an operator with a mos:admin certificate, or publish a partial update of application targets only',
      });
    }
  };
}

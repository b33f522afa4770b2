// mos's bootkit: the boot chain a keyset carries (reference/mos.md §1.2, §2). `mosb manifest publish`
// adds it to a release as an fs-only target; `mosctl install --partition` copies its UKI to the ESP.

/** Name of the target that carries the boot chain; `mosctl boot` does not activate it (mos's ActivateAll skips it). */
export const BOOTKIT_TARGET = 'bootkit';
/** Tag of the bootkit image in `<keys>/<keyset>/bootkit/oci`. */
export const BOOTKIT_TAG = 'bootkit-squashfs';
/** Version mos gives the bootkit target it adds. */
export const BOOTKIT_VERSION = '1.0.0';
/** The UKI inside the bootkit image (and beside its layout in the keyset), mos's `kernel.efi`. */
export const BOOTKIT_UKI_PATH = 'bootkit/kernel.efi';

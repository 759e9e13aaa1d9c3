/** Tritium's own version, reported as `version` in server metadata. */
export const TRITIUM_VERSION = "0.1.0";

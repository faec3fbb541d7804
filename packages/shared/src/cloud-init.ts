import { parse, stringify } from 'yaml';
import type { CloudInit } from './spec.js';

/** The files of a NoCloud seed (the ISO's volume is labelled `cidata`). */
export interface NoCloudSeed {
  'user-data': string;
  'meta-data': string;
  'network-config'?: string;
}

const asMapping = (text: string): Record<string, unknown> => {
  const value: unknown = text.trim() === '' ? {} : parse(text);
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
};

/**
 * The seed files for a spec's `cloud_init`: meta-data gets `instance-id`
 * (the workload id, so cloud-init runs once per workload, not per boot) and
 * `local-hostname` (the `hostname` shorthand, else the workload's name)
 * unless it sets them; the `ssh_authorized_keys` shorthand is merged into
 * #cloud-config user-data, after any keys it lists itself. The spec was
 * validated: its YAML parses and the shorthands fit the user-data's format.
 */
export function buildNoCloudSeed(cloudInit: CloudInit, instanceId: string, name: string): NoCloudSeed {
  const meta = asMapping(cloudInit.meta_data);
  if (cloudInit.hostname !== undefined) meta['local-hostname'] = cloudInit.hostname;
  meta['instance-id'] ??= instanceId;
  meta['local-hostname'] ??= name;

  let userData = cloudInit.user_data;
  if (cloudInit.ssh_authorized_keys.length > 0) {
    const config = asMapping(userData.replace(/^#cloud-config[^\n]*\n?/, ''));
    const existing = Array.isArray(config.ssh_authorized_keys) ? (config.ssh_authorized_keys as unknown[]) : [];
    config.ssh_authorized_keys = [...existing, ...cloudInit.ssh_authorized_keys.filter((k) => !existing.includes(k))];
    userData = `#cloud-config\n${stringify(config)}`;
  }
  return {
    'user-data': userData,
    'meta-data': stringify(meta),
    ...(cloudInit.network_config ? { 'network-config': cloudInit.network_config } : {}),
  };
}

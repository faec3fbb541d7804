import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { REPO_ROOT } from './processes.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** The files of the tests' bootable guest (scripts/test-guest.sh). */
export interface TestGuest {
  dir: string;
  kernel: string;
  initrd: string;
  /** Its empty ext4 root disk; use it through an overlay. */
  disk: string;
}

let built: Promise<TestGuest> | undefined;

/** Builds the guest once per machine (cached by the script) and once per test process. */
export function testGuest(): Promise<TestGuest> {
  built ??= run('bash', [`${REPO_ROOT}scripts/test-guest.sh`], { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }).then(({ stdout }) => {
    const dir = stdout.trim().split('\n').at(-1) ?? '';
    const guest = { dir, kernel: `${dir}/vmlinuz`, initrd: `${dir}/initrd.img`, disk: `${dir}/disk.qcow2` };
    for (const file of [guest.kernel, guest.initrd, guest.disk]) if (!existsSync(file)) throw new Error(`scripts/test-guest.sh printed ${dir}, which has no ${file}`);
    return guest;
  });
  return built;
}

/** The guest's serial console so far, '' before it exists. */
/** The tick counts the test guest printed, in order. */
export const ticksIn = (text: string): number[] => [...text.matchAll(/VIRTFLEET-TICK (\d+)/g)].map((m) => Number(m[1]));

export function consoleText(logFile: string): string {
  return existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
}

/** Waits until the console shows `marker` at least `count` times; returns the console text. */
export async function waitForConsole(logFile: string, marker: string, { count = 1, timeoutMs = 60_000 } = {}): Promise<string> {
  const { text } = await waitFor(
    `"${marker}" ×${count} on the guest's console ${logFile}`,
    () => {
      const text = consoleText(logFile);
      return text.split(marker).length - 1 >= count ? { text } : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
  return text;
}

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { NatsServer } from './nats-server.js';
import { REPO_ROOT } from './processes.js';

const run = promisify(execFile);
const SCRIPT = `${REPO_ROOT}scripts/simulated-host.sh`;

/** A host of the multi-host playground (scripts/simulated-host.sh), as its `env` command describes it. */
export interface SimulatedHost {
  name: string;
  /** Its network namespace, for `nsenter --net=/run/netns/NAME`. */
  netns: string;
  /** Its address on the playground fabric, inside the namespaces. */
  address: string;
  /** `unix://…` of its dockerd. */
  dockerHost: string;
  /** A client of its dockerd. */
  docker: Docker;
  /** Its libvirtd through the unix socket. */
  libvirtUri: string;
  /** Its libvirtd on the fabric, as the other simulated hosts reach it. */
  libvirtTcpUri: string;
  agentAddress: string;
  /** Its agent's state directory: VMs' files under `vms/`, the image cache under `images/`. */
  agentStateDir: string;
  /** Its agent's log (pino JSON lines). */
  agentLog: string;
  /** Runs a command inside its network namespace. */
  inNetns(command: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Kills its agent alone (SIGKILL by default: a crash); its engines and workloads go on. */
  killAgent(signal?: NodeJS.Signals): Promise<void>;
  /** Starts its agent again after killAgent, with the same config and state. */
  startAgent(): Promise<void>;
  /** Freezes its agent (SIGSTOP): its connections stay open and it answers nothing, until thawAgent (SIGCONT). */
  freezeAgent(): void;
  thawAgent(): void;
  /** `simulated-host.sh down`: stops everything and deletes its state. Safe to call twice. */
  down(): Promise<void>;
}

/** Runs the playground script; its output comes back in the error when it fails. */
export async function simulatedHostScript(args: string[], timeoutMs = 300_000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run('bash', [SCRIPT, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`simulated-host.sh ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`, { cause: err });
  }
}

/** Brings up simulated host `name` with its agent on `agentPort`, reporting to `nats` as its own NATS user, its certificate issued by the CA in `pkiDir`. */
export async function startSimulatedHost(name: string, nats: NatsServer, agentPort: number, pkiDir: string): Promise<SimulatedHost> {
  const { nkeySeedFile } = await nats.daemonConfig('agent', name);
  const up = ['up', name, '--nats', nats.url, '--agent-port', String(agentPort), '--pki', pkiDir, '--nats-seed', nkeySeedFile!];
  await simulatedHostScript(up);
  const { stdout } = await simulatedHostScript(['env', name]);
  const env = Object.fromEntries(stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).replace(/^'(.*)'$/, '$1').replace(/\\(.)/g, '$1')]));
  const netns = env.SIM_NETNS!;
  let stopped = false;
  const agentPid = () => Number(readFileSync(join(dirname(env.SIM_AGENT_STATE_DIR!), 'agent.pid'), 'utf8').trim());
  return {
    name,
    netns,
    address: env.SIM_ADDRESS!,
    dockerHost: env.SIM_DOCKER_HOST!,
    docker: new Docker({ socketPath: env.SIM_DOCKER_HOST!.replace(/^unix:\/\//, '') }),
    libvirtUri: env.SIM_LIBVIRT_URI!,
    libvirtTcpUri: env.SIM_LIBVIRT_TCP_URI!,
    agentAddress: `127.0.0.1:${agentPort}`,
    agentStateDir: env.SIM_AGENT_STATE_DIR!,
    agentLog: env.SIM_AGENT_LOG!,
    inNetns: (command) => run('nsenter', [`--net=/run/netns/${netns}`, ...command], { timeout: 30_000 }),
    async killAgent(signal: NodeJS.Signals = 'SIGKILL') {
      const pid = agentPid();
      process.kill(pid, signal);
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`the agent of ${name} (pid ${pid}) did not exit after ${signal}`);
    },
    freezeAgent() {
      process.kill(agentPid(), 'SIGSTOP');
    },
    thawAgent() {
      process.kill(agentPid(), 'SIGCONT');
    },
    async startAgent() {
      await simulatedHostScript(up);
    },
    async down() {
      if (stopped) return;
      stopped = true;
      await simulatedHostScript(['down', name]);
    },
  };
}

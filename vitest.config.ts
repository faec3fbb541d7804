import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

// Tests import the packages' TypeScript sources; processes spawned by e2e tests run the built dist/.
const alias = {
  '@virtfleet/shared': pkg('shared'),
  '@virtfleet/agent': pkg('agent'),
  '@virtfleet/coordinator': pkg('coordinator'),
  '@virtfleet/cli': pkg('cli'),
};

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      { resolve: { alias }, test: { name: 'unit', include: ['packages/*/src/**/*.test.ts'], environment: 'node' } },
      {
        resolve: { alias },
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Real daemons on a 2-core machine: run files one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});

import { defineConfig } from 'vitest/config'

// One root run for every package. The "@apt/source" condition resolves sibling
// packages to their TypeScript sources, so tests never need a build.
export default defineConfig({
  resolve: { conditions: ['@apt/source'] },
  ssr: { resolve: { conditions: ['@apt/source'] } },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'all',
          include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
        },
      },
      {
        // The proxy suites again on undici's pool (the default upstream engine is apt's own "wire" pool).
        extends: true,
        test: {
          name: 'undici-engine',
          include: [
            'packages/adapter/test/upstream-client.test.ts',
            'packages/server/test/{faults,headers,sdk-parity,stream-bytes,request-streaming,endpoints,direct-write,mixed-traffic}.test.ts',
          ],
          env: { APT_TEST_ENGINE: 'undici' },
        },
      },
      {
        // The wire engine with llhttp fed from the socket's JavaScript stream instead of reading the
        // socket itself (APT_WIRE_CONSUME=false, the fallback for a socket without a native stream).
        extends: true,
        test: {
          name: 'wire-stream-reads',
          include: [
            'packages/adapter/test/{upstream-client,wire-engine}.test.ts',
            'packages/server/test/{faults,stream-bytes,direct-write,mixed-traffic}.test.ts',
          ],
          env: { APT_TEST_WIRE_CONSUME: 'false' },
        },
      },
      {
        // The proxy suites again with the front off: /v1/* on node:http's request and response objects.
        extends: true,
        test: {
          name: 'node-http-front',
          include: [
            'packages/server/test/{faults,headers,sdk-parity,stream-bytes,request-streaming,endpoints,direct-write,mixed-traffic,observability}.test.ts',
          ],
          env: { APT_TEST_FRONT: 'false' },
        },
      },
    ],
  },
})

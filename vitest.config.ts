import { defineConfig } from 'vitest/config'

// One root run for every package. The "@apt/source" condition resolves sibling
// packages to their TypeScript sources, so tests never need a build.
export default defineConfig({
  resolve: { conditions: ['@apt/source'] },
  ssr: { resolve: { conditions: ['@apt/source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
})

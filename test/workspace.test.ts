import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'

const root = new URL('..', import.meta.url).pathname

interface Manifest { name: string, dependencies?: Record<string, string>, devDependencies?: Record<string, string> }

function manifests (): Manifest[] {
  const out: Manifest[] = []
  for (const folder of ['packages', 'apps']) {
    for (const entry of readdirSync(join(root, folder))) {
      out.push(JSON.parse(readFileSync(join(root, folder, entry, 'package.json'), 'utf8')) as Manifest)
    }
  }
  return out
}

/** The allowed runtime edges between internal packages (STYLE.md "Dependency direction"). */
const ALLOWED: Record<string, string[]> = {
  '@apt/adapter': [],
  '@apt/monitor': [],
  '@apt/server': ['@apt/adapter', '@apt/monitor'],
  '@apt/bench': ['@apt/monitor'],
  '@apt/proxy': ['@apt/server', '@apt/monitor', '@apt/bench'],
}

/** Third-party runtime dependencies the leaves may have. */
const LEAF_DEPENDENCIES: Record<string, string[]> = {
  '@apt/adapter': ['undici'],
  '@apt/monitor': ['hdr-histogram-js'],
}

describe('workspace', () => {
  test('internal dependencies only point the allowed way', () => {
    const problems: string[] = []
    for (const manifest of manifests()) {
      const allowed = ALLOWED[manifest.name]
      if (allowed === undefined) {
        problems.push(`${manifest.name} is not in the dependency map of test/workspace.test.ts`)
        continue
      }
      for (const dependency of Object.keys(manifest.dependencies ?? {})) {
        if (dependency.startsWith('@apt/') && !allowed.includes(dependency)) {
          problems.push(`${manifest.name} must not depend on ${dependency} (allowed: ${allowed.join(', ') || 'none'})`)
        }
      }
    }
    expect(problems).toEqual([])
  })

  test('the leaves stay leaves: no Fastify, pino or prom-client inside', () => {
    const problems: string[] = []
    for (const manifest of manifests()) {
      const allowed = LEAF_DEPENDENCIES[manifest.name]
      if (allowed === undefined) continue
      for (const dependency of Object.keys(manifest.dependencies ?? {})) {
        if (!allowed.includes(dependency)) problems.push(`${manifest.name} is a leaf and must not depend on ${dependency}`)
      }
    }
    expect(problems).toEqual([])
  })

  test('only apps/proxy/src/config.ts reads process.env among the proxy sources', () => {
    const offenders: string[] = []
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name)
        if (entry.isDirectory()) walk(path)
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && readFileSync(path, 'utf8').includes('process.env')) offenders.push(path.slice(root.length))
      }
    }
    for (const dir of ['packages/adapter/src', 'packages/monitor/src', 'packages/server/src']) walk(join(root, dir))
    expect(offenders).toEqual([])
  })

  test('the release tooling runs on this Node: `changeset status` reads every pending changeset', () => {
    // @changesets/cli 3 needs Node 22.11; a changeset naming an ignored package beside others is refused.
    const bin = join(root, 'node_modules/@changesets/cli/bin.js')
    const output = execFileSync(process.execPath, [bin, 'status'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    expect(output).toMatch(/packages to be bumped/i)
  })
})

import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseEnv } from 'node:util'
import { expect, test } from 'vitest'
import { loadConfig } from '../src/config.js'

const root = new URL('../../../', import.meta.url).pathname

test('.env.performance.example documents every variable config.ts reads, and its values are valid defaults', () => {
  const example = readFileSync(join(root, '.env.performance.example'), 'utf8')
  const documented = new Set([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1]))
  const source = readFileSync(join(root, 'apps/proxy/src/config.ts'), 'utf8')
  const read = new Set([...source.matchAll(/(?:env\.|['"])([A-Z][A-Z0-9_]{2,})\b/g)].map((match) => match[1]))
  const missing = [...read].filter((name) => name !== 'ENOENT' && !documented.has(name as string))
  expect(missing).toEqual([])
  const result = loadConfig(parseEnv(example) as Record<string, string>)
  expect(result.ok).toBe(true)
  expect(readdirSync(root)).toContain('.env.performance.example')
})

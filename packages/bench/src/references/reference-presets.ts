import { nginxCommand, nginxInstalled } from './nginx.js'

/** Reference proxies measured with `--compare <name>`. */
export type ReferencePreset = 'undici-minimal' | 'fastify-http-proxy' | 'nginx' | 'node-relay'

export const REFERENCE_PRESETS: readonly ReferencePreset[] = ['undici-minimal', 'fastify-http-proxy', 'nginx', 'node-relay']

export function isReferencePreset(name: string): name is ReferencePreset {
  return (REFERENCE_PRESETS as readonly string[]).includes(name)
}

function script(name: string): string {
  return new URL(`../../dist/references/${name}.js`, import.meta.url).pathname
}

/**
 * The presets a full run measures by default: both Node references, nginx when installed, and
 * Node's floor (a TCP relay that copies bytes, `node-relay.ts`).
 */
export function defaultReferencePresets(): ReferencePreset[] {
  return nginxInstalled() ? ['undici-minimal', 'fastify-http-proxy', 'nginx', 'node-relay'] : ['undici-minimal', 'fastify-http-proxy', 'node-relay']
}

/** The shell command of a preset; `directory` holds any files it needs (nginx's config). */
export function presetCommand(preset: ReferencePreset, directory: string): string {
  switch (preset) {
    case 'undici-minimal':
      return `exec '${process.execPath}' '${script('undici-minimal')}'`
    case 'fastify-http-proxy':
      return `exec '${process.execPath}' '${script('fastify-http-proxy')}'`
    case 'nginx':
      return nginxCommand(directory)
    case 'node-relay':
      return `exec '${process.execPath}' '${script('node-relay')}'`
  }
}

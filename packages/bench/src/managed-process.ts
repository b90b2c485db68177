import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { pathToFileURL } from 'node:url'
import { createProcessProbe, type ProcessProbe } from './process-probe.js'
import type { EmulatorKind } from './bench-options.js'
import type { UpstreamCounters } from './upstream-stats-hook.js'

/** A child process the benchmark started and owns: it is stopped by `close()` (its whole process group). */
export interface ManagedProcess {
  readonly name: string
  readonly pid: number
  readonly url: string
  readonly probe: ProcessProbe
  readonly startupMs: number
  /** Set once the process exited (a code or a signal name). */
  readonly exited: string | null
  /** The last few KiB the process wrote to stderr, and the last lines of its log file other than per-request lines. */
  stderrTail(): string
  /**
   * SIGSTOP to the whole process group: a target waiting for its turn uses no CPU, so its
   * timers and garbage collection cannot land in another target's measurement on the same core.
   */
  pause(): void
  /** SIGCONT to the group; true when it was paused. */
  resume(): boolean
  close(): Promise<void>
}

export interface EmulatorProcess extends ManagedProcess {
  /** Connections accepted and requests received since start (from the preloaded stats hook). */
  stats(): Promise<UpstreamCounters>
}

const STARTUP_TIMEOUT_MS = 20_000
const STOP_GRACE_MS = 3_000
const STDERR_TAIL_BYTES = 4096

/** Built files live in `dist/`; this module runs from `src/` under vitest and from `dist/` otherwise. */
function distFile(relative: string): string {
  return new URL(`../dist/${relative}`, import.meta.url).pathname
}

export const EMULATOR_MAIN = distFile('emulator-main.js')
export const ECHO_MAIN = distFile('echo-main.js')
export const UPSTREAM_STATS_HOOK = distFile('upstream-stats-hook.js')
export const DEFAULT_PROXY_ENTRY = new URL('../../../apps/proxy/dist/main.js', import.meta.url).pathname

/** Process groups started and not yet stopped, for a last-moment cleanup (`stopOwnedProcessesSync`). */
const liveGroups = new Set<number>()

/**
 * Sends SIGKILL to every process group this module started and has not yet
 * stopped. Synchronous, for an exit handler or a second Ctrl-C.
 */
export function stopOwnedProcessesSync(): void {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  liveGroups.clear()
}

export class StartupError extends Error {
  override readonly name = 'StartupError'
}

class Child implements ManagedProcess {
  readonly name: string
  readonly pid: number
  readonly probe: ProcessProbe
  url = ''
  startupMs = 0
  exited: string | null = null
  readonly #child: ChildProcess
  readonly #exit: Promise<void>
  #stderr = ''
  logFile: string | null = null

  constructor(name: string, child: ChildProcess) {
    if (child.pid === undefined) throw new StartupError(`${name}: could not start the process`)
    this.name = name
    this.pid = child.pid
    this.probe = createProcessProbe(child.pid)
    this.#child = child
    liveGroups.add(child.pid)
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL_BYTES)
    })
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = signal ?? String(code)
        resolve()
      })
      child.once('error', (error) => {
        this.exited = error.message
        resolve()
      })
    })
  }

  get child(): ChildProcess {
    return this.#child
  }

  stderrTail(): string {
    let log = ''
    if (this.logFile !== null) {
      try {
        const lines = readFileSync(this.logFile, 'utf8').slice(-65_536).split('\n')
        // A signal that stopped it (the proxy logs it when draining) says more than the last lines.
        const signal = lines.find((line) => line.includes('"signal"'))
        const last = lines.filter((line) => line !== '' && !line.includes('"msg":"request"')).slice(-2)
        log = (signal === undefined ? last : [signal]).map((line) => line.slice(0, 400)).join('\n')
      } catch {
        // no log
      }
    }
    return [this.#stderr.trim().slice(-1000), log].filter((part) => part !== '').join('\n')
  }

  #paused = false

  pause(): void {
    if (this.#paused || this.exited !== null) return
    this.#paused = true
    this.#signal('SIGSTOP')
  }

  resume(): boolean {
    if (!this.#paused) return false
    this.#paused = false
    this.#signal('SIGCONT')
    return true
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      // Detached children lead their own process group: reach `sh -c` grandchildren and nginx workers too.
      process.kill(-this.pid, signal)
    } catch {
      try {
        this.#child.kill(signal)
      } catch {
        // already gone
      }
    }
  }

  async close(): Promise<void> {
    // A stopped process would hold SIGTERM until continued.
    this.resume()
    if (this.exited === null) {
      this.#signal('SIGTERM')
      const timer = setTimeout(() => this.#signal('SIGKILL'), STOP_GRACE_MS)
      await this.#exit
      clearTimeout(timer)
    }
    // The group may outlive its leader (nginx workers): make sure nothing stays behind.
    this.#signal('SIGKILL')
    liveGroups.delete(this.pid)
    this.#child.removeAllListeners()
    this.#child.stdout?.destroy()
    this.#child.stderr?.destroy()
    if (this.#child.connected) this.#child.disconnect()
  }

  /** Rejects with the process's stderr once it exits or the time runs out. */
  async waitFor<T>(what: string, poll: () => Promise<T | undefined> | T | undefined, signal: AbortSignal | undefined): Promise<T> {
    const started = performance.now()
    for (;;) {
      const value = await poll()
      if (value !== undefined) {
        this.startupMs = Math.round(performance.now() - started)
        return value
      }
      if (this.exited !== null) {
        throw new StartupError(`${this.name} exited (${this.exited}) before ${what}${this.#stderr ? `:\n${this.stderrTail()}` : ''}`)
      }
      if (signal?.aborted) throw new StartupError(`${this.name}: interrupted before ${what}`)
      if (performance.now() - started > STARTUP_TIMEOUT_MS) {
        throw new StartupError(`${this.name}: no ${what} within ${STARTUP_TIMEOUT_MS / 1000} s${this.#stderr ? `:\n${this.stderrTail()}` : ''}`)
      }
      await delay(25)
    }
  }
}

class EmulatorChild extends Child implements EmulatorProcess {
  #nextId = 0
  readonly #pending = new Map<number, (counters: UpstreamCounters) => void>()

  constructor(child: ChildProcess) {
    super('emulator', child)
    child.on('message', (message: { type?: string, id?: number } & UpstreamCounters) => {
      if (message.type !== 'stats' || message.id === undefined) return
      this.#pending.get(message.id)?.({ connections: message.connections, requests: message.requests })
      this.#pending.delete(message.id)
    })
  }

  stats(): Promise<UpstreamCounters> {
    const id = ++this.#nextId
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error('the emulator did not answer a stats request within 2 s'))
      }, 2000)
      this.#pending.set(id, (counters) => {
        clearTimeout(timer)
        resolve(counters)
      })
      this.child.send({ type: 'stats', id })
    })
  }
}

/** Starts `emulator-main` (with the stats hook preloaded) and waits for its `{"url":...}` line. */
export async function startEmulatorProcess(prefix: readonly string[], kind: EmulatorKind, signal?: AbortSignal): Promise<EmulatorProcess> {
  const argv = [...prefix, process.execPath, '--import', pathToFileURL(UPSTREAM_STATS_HOOK).href, EMULATOR_MAIN]
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', EMULATOR_KIND: kind },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  const emulator = new EmulatorChild(child)
  let stdout = ''
  child.stdout?.setEncoding('utf8')
  child.stdout?.on('data', (text: string) => {
    stdout += text
  })
  try {
    emulator.url = await emulator.waitFor('its {"url":...} line', () => {
      const line = stdout.split('\n').find((candidate) => candidate.startsWith('{'))
      return line === undefined ? undefined : (JSON.parse(line) as { url: string }).url
    }, signal)
  } catch (error) {
    await emulator.close()
    throw error
  }
  emulator.probe.refresh()
  return emulator
}

export interface ProxyProcessOptions {
  entry: string
  upstreamUrl: string
  env: Readonly<Record<string, string>>
  /** Where the proxy's stdout (pino lines) goes. */
  logFile: string
}

const LISTENING = /"msg":"Server listening at (http:\/\/[^"]+)"/

/** Starts the apt proxy the way users run it (`node apps/proxy/dist/main.js`) on an ephemeral port. */
export async function startProxyProcess(prefix: readonly string[], options: ProxyProcessOptions, signal?: AbortSignal): Promise<ManagedProcess> {
  const log = openSync(options.logFile, 'w')
  const argv = [...prefix, process.execPath, options.entry]
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    env: {
      ...process.env,
      ANTHROPIC_UPSTREAM_URL: options.upstreamUrl,
      PORT: '0',
      HOST: '127.0.0.1',
      APT_ENV_FILE: '/nonexistent',
      ...options.env,
    },
    stdio: ['ignore', log, 'pipe'],
  })
  closeSync(log)
  const proxy = new Child('proxy', child)
  proxy.logFile = options.logFile
  try {
    proxy.url = await proxy.waitFor('"Server listening at" in its log', () => {
      // The listening line is among the first few lines.
      const head = readFileSync(options.logFile, 'utf8').slice(0, 8192)
      return LISTENING.exec(head)?.[1]
    }, signal)
  } catch (error) {
    await proxy.close()
    throw error
  }
  proxy.probe.refresh()
  return proxy
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export interface CommandProcessOptions {
  name: string
  command: string
  upstreamUrl: string
  /** Directory for the process's log file. */
  directory: string
}

/** Runs `sh -c command` with `UPSTREAM_URL` and `PORT`; ready once 127.0.0.1:$PORT accepts connections. */
export async function startCommandProcess(prefix: readonly string[], options: CommandProcessOptions, signal?: AbortSignal): Promise<ManagedProcess> {
  const port = await freePort()
  const logFile = join(options.directory, `${options.name.replace(/[^\w.-]/g, '_')}.log`)
  const log = openSync(logFile, 'w')
  const argv = [...prefix, '/bin/sh', '-c', options.command]
  const child = spawn(argv[0] as string, argv.slice(1), {
    detached: true,
    env: { ...process.env, UPSTREAM_URL: options.upstreamUrl, PORT: String(port) },
    stdio: ['ignore', log, 'pipe'],
  })
  closeSync(log)
  const target = new Child(options.name, child)
  target.logFile = logFile
  try {
    await target.waitFor(`a listener on 127.0.0.1:${port}`, async () => ((await accepts(port)) ? true : undefined), signal)
  } catch (error) {
    await target.close()
    throw error
  }
  target.url = `http://127.0.0.1:${port}`
  target.probe.refresh()
  return target
}

import { execFileSync, spawnSync } from 'node:child_process'
import { cpus as listCpus } from 'node:os'

/**
 * CPU placement of a run: the proxy alone on one CPU, the upstream and the load
 * generator on another, so the proxy's CPU is the one being measured.
 */
export interface Pinning {
  /** `taskset` is used for the child processes. */
  used: boolean
  /** CPU list of the proxies (`taskset -c`), null when not pinned. */
  proxyCpus: string | null
  /** CPU list of the upstream (emulator), null when not pinned. */
  upstreamCpus: string | null
  /** CPU list the load generator (this process) was pinned to, null when not pinned. */
  loadCpus: string | null
  /** Why pinning was not (fully) used; empty when it was. */
  note: string
}

let tasksetPresent: boolean | undefined

function hasTaskset(): boolean {
  tasksetPresent ??= spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0
  return tasksetPresent
}

export function planPinning(wanted: boolean, pinLoadGenerator: boolean): Pinning {
  const unpinned = (note: string): Pinning => ({ used: false, proxyCpus: null, upstreamCpus: null, loadCpus: null, note })
  if (!wanted) return unpinned('pinning switched off')
  if (process.platform !== 'linux') return unpinned(`pinning needs Linux taskset, platform is ${process.platform}`)
  if (!hasTaskset()) return unpinned('taskset not found: processes share all CPUs')
  // Not availableParallelism(): it reports the affinity of this process, which an earlier run may have pinned.
  const cpus = listCpus().length
  if (cpus < 2) return unpinned(`only ${cpus} CPU available: proxy, upstream and load share it`)
  let loadCpus: string | null = null
  let note = ''
  if (pinLoadGenerator) {
    try {
      // -a: every thread of this process (libuv and V8 threads included).
      execFileSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' })
      loadCpus = '1'
    } catch (error) {
      note = `could not pin the load generator: ${(error as Error).message}`
    }
  } else {
    note = 'load generator not pinned (library call without pinLoadGenerator)'
  }
  return { used: true, proxyCpus: '0', upstreamCpus: '1', loadCpus, note }
}

/** argv prefix that runs a command on `cpus`, or none. */
export function pinPrefix(cpus: string | null): string[] {
  return cpus === null ? [] : ['taskset', '-c', cpus]
}

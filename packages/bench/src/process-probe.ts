import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/**
 * Reads a process tree's CPU time and resident memory from /proc (Linux). A proxy
 * started through `sh -c` or nginx's master/worker pair is measured as the
 * whole tree under its root process.
 */
export interface ProcessProbe {
  readonly rootPid: number
  /** The root and its descendants, as found by the last `refresh()`. */
  readonly pids: readonly number[]
  /** Re-reads the process tree (call after start-up and between phases, not per sample). */
  refresh(): void
  /** utime + stime of the tree in clock ticks, or null when /proc cannot be read. */
  cpuTicks(): number | null
  /** Sum of VmRSS of the tree in KiB, or null when /proc cannot be read. */
  rssKb(): number | null
}

let ticksPerSecond: number | undefined

/** `getconf CLK_TCK` (usually 100), read once. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** Fields after the `(comm)` of /proc/PID/stat; index 0 is field 3 (state). */
function statFields(pid: number): string[] | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return null
  }
  const end = text.lastIndexOf(')')
  return end < 0 ? null : text.slice(end + 2).split(' ')
}

function descendants(rootPid: number): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return [rootPid]
  }
  const children = new Map<number, number[]>()
  for (const entry of entries) {
    const pid = Number(entry)
    if (!Number.isInteger(pid)) continue
    const parent = Number(statFields(pid)?.[1])
    if (!Number.isInteger(parent)) continue
    const list = children.get(parent)
    if (list === undefined) children.set(parent, [pid])
    else list.push(pid)
  }
  const tree = [rootPid]
  for (let index = 0; index < tree.length; index++) {
    for (const child of children.get(tree[index] as number) ?? []) tree.push(child)
  }
  return tree
}

function rssOf(pid: number): number | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1')
  } catch {
    return null
  }
  const match = /VmRSS:\s+(\d+) kB/.exec(text)
  // Zombies and kernel threads have no VmRSS line: they hold no memory.
  return match === null ? 0 : Number(match[1])
}

export function createProcessProbe(rootPid: number): ProcessProbe {
  let pids: number[] = [rootPid]
  return {
    rootPid,
    get pids() {
      return pids
    },
    refresh() {
      pids = descendants(rootPid)
    },
    cpuTicks() {
      let total = 0
      let found = false
      for (const pid of pids) {
        const fields = statFields(pid)
        if (fields === null) continue
        found = true
        total += Number(fields[11]) + Number(fields[12])
      }
      return found ? total : null
    },
    rssKb() {
      let total = 0
      let found = false
      for (const pid of pids) {
        const rss = rssOf(pid)
        if (rss === null) continue
        found = true
        total += rss
      }
      return found ? total : null
    },
  }
}
